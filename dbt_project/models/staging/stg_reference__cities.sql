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
    cast(balanced_2011_2023 as integer) = 1 as is_balanced_2011_2023,
    -- Matching keys of the province, for names that need a province to be unambiguous.
    {{ city_key('province_name_zh') }} as province_key_zh,
    {{ city_key("regexp_replace(province_name_zh, '(壮族自治区|回族自治区|维吾尔自治区|自治区|省|市)$', '')") }} as province_key_short,
    {{ city_key('province_name_en') }} as province_key_en
from {{ ref('ref_cities') }}
