-- The user's city aliases of the refresh ($CITYRES_HOME/mappings/cities.csv, copied by ingest).
select alias_name, city_code, valid_from_year, valid_to_year, excluded, origin
from {{ source('raw', 'mapping_cities') }}
