-- New firm registrations per city and year, all industries and digital ones (divisions 63-65).
-- Same counts as grouping int_enterprise_registrations, but the registrations (tens of millions
-- of rows a year) are first counted per file, city name and registration year, with the digital
-- flag looked up once per division; only those counts meet the loads in force and the resolved
-- city names (joins that multiply rows multiply the counts alike).
with counted as (
    select
        load_id,
        file_name,
        file_year,
        city_key,
        year(registration_date) as registration_year,
        count(*) as new_firms,
        count(*) filter (
            where industry_division in (
                select cast(division as varchar) from {{ ref('digital_industries') }} where is_digital
            )
        ) as new_digital_firms
    from {{ ref('stg_raw__enterprise_registrations') }}
    group by all
)

select
    names.city_code,
    counted.registration_year as year,
    cast(sum(counted.new_firms) as bigint) as new_firms,
    cast(sum(counted.new_digital_firms) as bigint) as new_digital_firms
from counted
inner join {{ ref('int_current_files') }} as files
    on files.source = 'enterprises' and files.file_name = counted.file_name
    and files.load_id = counted.load_id
inner join {{ ref('int_city_names_resolved') }} as names
    on names.source = 'enterprises' and names.city_key = counted.city_key
    and names.province_text is null and names.year = counted.file_year
where names.city_code is not null and counted.registration_year is not null
group by all
