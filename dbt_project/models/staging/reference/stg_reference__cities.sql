-- The city reference seed, typed: the years each city exists (0 = before 2010, 9999 = still
-- exists) and its flags as booleans. Province matching keys: int_cities_with_province_keys.
select
    city_code,
    city_name_zh,
    city_name_short_zh,
    city_name_en,
    province_code,
    province_name_zh,
    province_name_en,
    admin_level,
    cast(key_city as integer) = 1 as is_key_city,
    cast(resource_based as integer) = 1 as is_resource_based,
    region,
    hu_line_side,
    lat,
    lon,
    coalesce(became_prefecture_city_year, 0) as first_year,
    coalesce(valid_to_year, 9999) as last_year,
    cast(balanced_2011_2023 as integer) = 1 as is_balanced_2011_2023
from {{ ref('ref_cities') }}
