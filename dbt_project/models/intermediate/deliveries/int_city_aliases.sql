-- The alias seed with, for each row, whether it identifies a city: a row whose change type names
-- another unit than the delivery means (merged, split, excluded, …; seed name_rules, rule
-- non_identity_change_type) never does.
with non_identity as (
    select value as change_type
    from {{ ref('name_rules') }}
    where rule = 'non_identity_change_type'
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
from {{ ref('stg_reference__city_aliases') }} as aliases
