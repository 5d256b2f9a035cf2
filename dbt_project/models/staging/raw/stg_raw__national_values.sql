-- National indicators as delivered (every load), the value text parsed to a number. The indicator
-- name still carries qualifiers and units (int_national_indicators maps it to a variable).
select
    load_id,
    file_name,
    source_row,
    year,
    indicator_text,
    value_text,
    {{ parse_number('value_text') }} as value
from {{ source('raw', 'national_values') }}
