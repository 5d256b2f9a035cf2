-- Firm registrations, typed; GB/T 4754 class codes arrive as e.g. 'I6510' (section letter +
-- 4 digits) or '6510'. Digital firms are divisions 63-65 (seed digital_industries).
with current_rows as (
    select r.*
    from {{ source('raw', 'enterprise_registrations') }} as r
    inner join {{ ref('stg_raw__current_files') }} as f
        on f.source = 'enterprises' and f.file_name = r.file_name and f.load_id = r.load_id
),

typed as (
    select
        firm_id,
        city_key,
        year as file_year,
        try_cast(registration_date_text as date) as registration_date,
        upper(trim(industry_code_text)) as industry_code,
        regexp_extract(industry_code_text, '([0-9]{2})[0-9]*\s*$', 1) as industry_division,
        {{ parse_number('registered_capital_text') }} as registered_capital,
        load_id,
        file_name,
        source_row
    from current_rows
)

select
    typed.firm_id,
    names.city_code,
    typed.registration_date,
    year(typed.registration_date) as registration_year,
    typed.industry_code,
    typed.industry_division,
    coalesce(digital.is_digital, false) as is_digital,
    typed.registered_capital,
    typed.file_year,
    typed.load_id,
    typed.file_name,
    typed.source_row
from typed
left join {{ ref('stg_city_names__resolved') }} as names
    on names.source = 'enterprises' and names.city_key = typed.city_key
    and names.province_text is null and names.year = typed.file_year
left join {{ ref('digital_industries') }} as digital
    on cast(digital.division as varchar) = typed.industry_division
