-- New firm registrations per city and year, all industries and digital ones (divisions 63-65).
select
    city_code,
    registration_year as year,
    count(*) as new_firms,
    count(*) filter (where is_digital) as new_digital_firms
from {{ ref('int_enterprise_registrations') }}
where city_code is not null and registration_year is not null
group by all
