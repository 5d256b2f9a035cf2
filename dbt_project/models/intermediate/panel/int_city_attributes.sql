-- Time-invariant city attributes: reference facts plus the 2014 State Council city-size tier
-- (国发〔2014〕51号, by urban-district resident population; seed city_size_tiers) and the 1984
-- telephone density.
with historical as (
    select
        city_code,
        max(value) filter (where variable = 'urban_resident_pop_2014') as urban_resident_pop_2014,
        max(value) filter (where variable = 'telephones_per_100_1984') as telephones_per_100_1984
    from {{ ref('int_historical_city_values') }}
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
    tiers.size_tier,
    tiers.size_tier_group
from {{ ref('stg_reference__cities') }} as cities
left join historical using (city_code)
left join {{ ref('city_size_tiers') }} as tiers
    on historical.urban_resident_pop_2014 >= tiers.min_urban_pop
    and (tiers.max_urban_pop is null or historical.urban_resident_pop_2014 < tiers.max_urban_pop)
