-- The alias seed, typed, with the matching key of each name (macro city_key). Which rows identify
-- a city is decided by the seed name_rules (int_city_aliases).
select
    coalesce(alias_name_zh, alias_name_en) as alias_name,
    alias_code,
    {{ city_key('coalesce(alias_name_zh, alias_name_en)') }} as alias_key,
    maps_to_city_code as city_code,
    coalesce(valid_from_year, 0) as valid_from_year,
    coalesce(valid_to_year, 9999) as valid_to_year,
    change_type,
    confidence
from {{ ref('ref_city_aliases') }}
