-- Time-invariant city attributes: reference facts plus the 2014 State Council city-size tier
-- (国发〔2014〕51号, by urban-district resident population) and the 1984 telephone density.
with historical as (
    select
        city_code,
        max(value) filter (where variable = 'urban_resident_pop_2014') as urban_resident_pop_2014,
        max(value) filter (where variable = 'telephones_per_100_1984') as telephones_per_100_1984
    from {{ ref('stg_historical__city_values') }}
    where city_code is not null
    group by city_code
)

select
    cities.city_code,
    cities.city_name_zh as city_name,
    cities.city_name_en,
    cities.province_code,
    cities.province_name_zh as province_name,
    cities.admin_level,
    cities.is_key_city,
    cities.is_resource_based,
    cities.region,
    cities.hu_line_side,
    cities.lat,
    cities.lon,
    historical.urban_resident_pop_2014,
    historical.telephones_per_100_1984,
    case
        when historical.urban_resident_pop_2014 is null then null
        when historical.urban_resident_pop_2014 >= 1000 then 'megacity'
        when historical.urban_resident_pop_2014 >= 500 then 'extra_large'
        when historical.urban_resident_pop_2014 >= 300 then 'large_i'
        when historical.urban_resident_pop_2014 >= 100 then 'large_ii'
        when historical.urban_resident_pop_2014 >= 50 then 'medium'
        when historical.urban_resident_pop_2014 >= 20 then 'small_i'
        else 'small_ii'
    end as size_tier,
    -- the five groups of the resilience study's Table 6
    case
        when historical.urban_resident_pop_2014 is null then null
        when historical.urban_resident_pop_2014 >= 1000 then 'megacity'
        when historical.urban_resident_pop_2014 >= 500 then 'extra_large'
        when historical.urban_resident_pop_2014 >= 100 then 'large'
        when historical.urban_resident_pop_2014 >= 50 then 'medium'
        else 'small'
    end as size_tier_group
from {{ ref('stg_reference__cities') }} as cities
left join historical using (city_code)
