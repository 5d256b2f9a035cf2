-- The user's header mappings of the refresh ($CITYRES_HOME/mappings/headers.csv, copied by
-- ingest, which applies them: raw.city_cells carries the variable each header was read as).
select source, header_base, variable, unit, origin
from {{ source('raw', 'mapping_headers') }}
