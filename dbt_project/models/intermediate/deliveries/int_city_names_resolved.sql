-- Every (source, name, province, year) a delivery used, resolved to one city code through the
-- alias seed: the alias must be valid that year, the city must exist that year, and a name
-- shared by several cities (Suzhou, Taizhou, …) needs the province to decide. Historical
-- tables are keyed by today's cities. Same rules as warehouse/names.py; both read the rule lists
-- of the seed name_rules (through int_city_aliases and int_cities_with_province_keys).
with names as (
    select distinct source, city_key, province_text, year
    from {{ ref('int_city_cells_current') }}
    union
    select distinct 'enterprises' as source, city_key, null as province_text, file_year as year
    from {{ ref('stg_raw__enterprise_registrations') }}
),

matches as (
    select
        names.source,
        names.city_key,
        names.province_text,
        names.year,
        aliases.city_code,
        aliases.change_type,
        names.province_text is not null
            and {{ city_key('names.province_text') }} in (
                cities.province_key_zh, cities.province_key_short, cities.province_key_en
            ) as province_matches
    from names
    inner join {{ ref('int_city_aliases') }} as aliases
        on aliases.alias_key = names.city_key and aliases.identifies_city
    inner join {{ ref('int_cities_with_province_keys') }} as cities
        on cities.city_code = aliases.city_code
    where case
        when names.source = 'historical'
            then aliases.valid_to_year = 9999 and cities.last_year = 9999
        else names.year between aliases.valid_from_year and aliases.valid_to_year
            and names.year between cities.first_year and cities.last_year
    end
),

candidates as (
    -- one row per candidate city; how the name matched is kept for the load report
    select
        source,
        city_key,
        province_text,
        year,
        city_code,
        case
            when bool_or(change_type = 'canonical_name') then 'canonical_name'
            else min(change_type)
        end as match_type,
        bool_or(province_matches) as province_matches
    from matches
    group by source, city_key, province_text, year, city_code
),

counted as (
    select
        *,
        count(*) over (partition by source, city_key, province_text, year) as n_candidates,
        sum(province_matches::integer) over (partition by source, city_key, province_text, year)
            as n_province_matches
    from candidates
)

select
    source,
    city_key,
    province_text,
    year,
    city_code,
    match_type,
    n_candidates > 1 as needed_province
from counted
where n_candidates = 1 or (province_matches and n_province_matches = 1)
