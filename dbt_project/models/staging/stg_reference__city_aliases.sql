select
    coalesce(alias_name_zh, alias_name_en) as alias_name,
    alias_code,
    {{ city_key('coalesce(alias_name_zh, alias_name_en)') }} as alias_key,
    maps_to_city_code as city_code,
    coalesce(valid_from_year, 0) as valid_from_year,
    coalesce(valid_to_year, 9999) as valid_to_year,
    change_type,
    -- Rows that name another unit than the delivery means never identify a city.
    change_type not in ('merged_into', 'abolished_split', 'boundary_transfer',
                        'excluded_non_city_prefecture', 'not_prefecture_city',
                        'new_city_from_subunits') as identifies_city,
    confidence
from {{ ref('ref_city_aliases') }}
