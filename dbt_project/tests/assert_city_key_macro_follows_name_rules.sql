-- The macro city_key writes its noise pattern out (tests/test_names.py runs the macro's body as
-- plain SQL outside dbt); the seed name_rules is the source of that pattern. Fails when the seed
-- has not exactly one noise pattern, or when the macro and the seed's pattern give a different key
-- for any alias, province name or probe string.
with rules as (
    select value as pattern from {{ ref('name_rules') }} where rule = 'noise_pattern'
),

names as (
    select coalesce(alias_name_zh, alias_name_en) as name from {{ ref('ref_city_aliases') }}
    union
    select province_name_zh from {{ ref('ref_cities') }}
    union
    select province_name_en from {{ ref('ref_cities') }}
    union
    select unnest(['Xi An', 'xi''an', 'Ma-anshan', 'Lu’an', ' 石家庄 市 ', 'a`b·c.d-e', 'x' || chr(9) || 'y'])
),

keys as (
    select
        names.name,
        {{ city_key('names.name') }} as macro_key,
        lower(regexp_replace(names.name, rules.pattern, '', 'g')) as seed_key
    from names
    cross join rules
)

select 'noise_pattern rows: ' || count(*) as problem
from rules
having count(*) <> 1
union all
select 'key of ' || name || ': macro ' || macro_key || ', seed ' || seed_key
from keys
where macro_key is distinct from seed_key
