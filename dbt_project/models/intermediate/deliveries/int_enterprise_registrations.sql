-- Firm registrations of the loads in force, with the resolved city code and the digital-industry
-- flag (divisions 63-65, seed digital_industries).
with current_rows as (
    select registrations.*
    from {{ ref('stg_raw__enterprise_registrations') }} as registrations
    inner join {{ ref('int_current_files') }} as files
        on files.source = 'enterprises' and files.file_name = registrations.file_name
        and files.load_id = registrations.load_id
)

select
    current_rows.firm_id,
    names.city_code,
    current_rows.registration_date,
    year(current_rows.registration_date) as registration_year,
    current_rows.industry_code,
    current_rows.industry_division,
    coalesce(digital.is_digital, false) as is_digital,
    current_rows.registered_capital,
    current_rows.file_year,
    current_rows.load_id,
    current_rows.file_name,
    current_rows.source_row
from current_rows
left join {{ ref('int_city_names_resolved') }} as names
    on names.source = 'enterprises' and names.city_key = current_rows.city_key
    and names.province_text is null and names.year = current_rows.file_year
left join {{ ref('digital_industries') }} as digital
    on cast(digital.division as varchar) = current_rows.industry_division
