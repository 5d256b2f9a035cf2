-- Every delivered cell of the city-keyed tables (every load and row kind), with the header split
-- into base and unit and the text parsed to a number. The original text, file, row and column
-- stay beside the parsed value. int_city_cells_current keeps the city rows of the loads in force.
with split as (
    select
        *,
        trim(regexp_extract(header_text, '^(.*)[(（]([^()（）]+)[)）]\s*$', 1)) as header_with_unit_base,
        trim(regexp_extract(header_text, '^(.*)[(（]([^()（）]+)[)）]\s*$', 2)) as header_unit
    from {{ source('raw', 'city_cells') }}
)

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
    coalesce(nullif(header_with_unit_base, ''), trim(header_text)) as header_base,
    nullif(header_unit, '') as header_unit,
    value_text,
    {{ parse_number('value_text') }} as value_number,
    {{ is_missing_marker('value_text') }} as is_missing,
    {{ is_unparsed_number('value_text') }} as is_unparsed
from split
