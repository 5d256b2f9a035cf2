-- Each reference city with the matching keys of its province (macro city_key), for names that
-- need a province to be unambiguous: the full Chinese name, the short name (the first suffix of
-- the seed name_rules, rule province_suffix, in position order that the name ends with, stripped)
-- and the English name.
with suffixes as (
    select position, value as suffix
    from {{ ref('name_rules') }}
    where rule = 'province_suffix'
),

short_names as (
    select
        cities.city_code,
        arg_min(
            substring(cities.province_name_zh, 1, length(cities.province_name_zh) - length(suffixes.suffix)),
            suffixes.position
        ) as province_name_short_zh
    from {{ ref('stg_reference__cities') }} as cities
    inner join suffixes
        on ends_with(cities.province_name_zh, suffixes.suffix)
        and length(cities.province_name_zh) > length(suffixes.suffix)
    group by cities.city_code
)

select
    cities.city_code,
    cities.province_code,
    cities.first_year,
    cities.last_year,
    {{ city_key('cities.province_name_zh') }} as province_key_zh,
    {{ city_key('coalesce(short_names.province_name_short_zh, cities.province_name_zh)') }} as province_key_short,
    {{ city_key('cities.province_name_en') }} as province_key_en
from {{ ref('stg_reference__cities') }} as cities
left join short_names using (city_code)
