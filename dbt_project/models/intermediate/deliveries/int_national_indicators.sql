-- National indicators by year from the loads in force, mapped by the start of their name (the
-- delivered text carries qualifiers and units, e.g. 人民币对美元汇率(年平均价)(元/美元)).
with current_rows as (
    select national.*
    from {{ ref('stg_raw__national_values') }} as national
    inner join {{ ref('int_current_files') }} as files
        on files.source = 'national' and files.file_name = national.file_name
        and files.load_id = national.load_id
)

select
    current_rows.year,
    indicators.variable,
    current_rows.value,
    indicators.canonical_unit as unit,
    current_rows.indicator_text,
    current_rows.value_text,
    current_rows.load_id,
    current_rows.file_name,
    current_rows.source_row
from current_rows
inner join {{ ref('national_indicators') }} as indicators
    on starts_with(trim(current_rows.indicator_text), indicators.indicator_base)
