-- City-keyed cells of the loads in force, with the header split into base and unit and the
-- text parsed to a number. The original text, file and row stay beside the parsed value.
with cells as (
    select c.*
    from {{ source('raw', 'city_cells') }} as c
    inner join {{ ref('stg_raw__current_files') }} as f using (source, file_name, load_id)
    where c.row_kind = 'city'
),

split as (
    select
        *,
        trim(regexp_extract(header_text, '^(.*)[(（]([^()（）]+)[)）]\s*$', 1)) as header_with_unit_base,
        trim(regexp_extract(header_text, '^(.*)[(（]([^()（）]+)[)）]\s*$', 2)) as header_unit
    from cells
)

select
    load_id,
    source,
    file_name,
    source_row,
    source_col,
    year,
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
