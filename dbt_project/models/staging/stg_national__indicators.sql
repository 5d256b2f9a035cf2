-- National indicators by year, mapped by the start of their name (the delivered text carries
-- qualifiers and units, e.g. 人民币对美元汇率(年平均价)(元/美元)).
with current_rows as (
    select v.*
    from {{ source('raw', 'national_values') }} as v
    inner join {{ ref('stg_raw__current_files') }} as f
        on f.source = 'national' and f.file_name = v.file_name and f.load_id = v.load_id
)

select
    current_rows.year,
    indicators.variable,
    {{ parse_number('current_rows.value_text') }} as value,
    indicators.canonical_unit as unit,
    current_rows.indicator_text,
    current_rows.value_text,
    current_rows.load_id,
    current_rows.file_name,
    current_rows.source_row
from current_rows
inner join {{ ref('national_indicators') }} as indicators
    on starts_with(trim(current_rows.indicator_text), indicators.indicator_base)
