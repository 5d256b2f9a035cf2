-- Firm registrations (every load), typed; GB/T 4754 class codes arrive as e.g. 'I6510' (section
-- letter + 4 digits) or '6510': industry_division is their first two digits.
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
from {{ source('raw', 'enterprise_registrations') }}
