-- The user's unit conversions of the refresh ($CITYRES_HOME/mappings/units.csv, copied by ingest).
select unit, canonical_unit, factor, origin
from {{ source('raw', 'mapping_units') }}
