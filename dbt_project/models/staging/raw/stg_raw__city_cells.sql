-- Every delivered cell of the city-keyed tables (every load and row kind), with what ingest read
-- its header to mean (variable, delivered unit, scope, column kind: warehouse/mappings.py and
-- warehouse/layouts.py) and the text parsed to a number. The original text, file, row and column
-- stay beside the parsed value. int_city_cells_current keeps the city rows of the loads in force.
select
    load_id,
    source,
    file_name,
    source_row,
    source_col,
    year,
    row_kind,
    city_name_text,
    city_key,
    province_text,
    header_text,
    variable,
    unit as header_unit,
    scope,
    column_kind,
    value_text,
    {{ parse_number('value_text') }} as value_number,
    {{ is_missing_marker('value_text') }} as is_missing,
    {{ is_unparsed_number('value_text') }} as is_unparsed
from {{ source('raw', 'city_cells') }}
