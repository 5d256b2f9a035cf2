-- The alias seed and the user's aliases ($CITYRES_HOME/mappings/cities.csv), with, for each row,
-- whether it identifies a city: a row whose change type names another unit than the delivery
-- means (merged, split, excluded, …; seed name_rules, rule non_identity_change_type) never does.
with non_identity as (
    select value as change_type
    from {{ ref('name_rules') }}
    where rule = 'non_identity_change_type'
),

aliases as (
    select alias_name, alias_code, alias_key, city_code, valid_from_year, valid_to_year,
           change_type, confidence
    from {{ ref('stg_reference__city_aliases') }}
    union all
    select
        alias_name,
        null as alias_code,
        {{ city_key('alias_name') }} as alias_key,
        city_code,
        coalesce(valid_from_year, 0) as valid_from_year,
        coalesce(valid_to_year, 9999) as valid_to_year,
        case when excluded then 'user_excluded' else 'user_alias' end as change_type,
        'user' as confidence
    from {{ ref('stg_raw__mapping_cities') }}
)

select
    aliases.alias_name,
    aliases.alias_code,
    aliases.alias_key,
    aliases.city_code,
    aliases.valid_from_year,
    aliases.valid_to_year,
    aliases.change_type,
    aliases.change_type not in (select change_type from non_identity) as identifies_city,
    aliases.confidence
from aliases
