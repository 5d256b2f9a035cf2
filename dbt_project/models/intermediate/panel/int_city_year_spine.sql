-- One row per city and data year of the analysis universe (var panel_universe), for the years
-- the city exists. Data years run from var data_first_year to var data_last_year or the latest
-- year a yearbook was loaded for, whichever comes first: adding a year's files extends the
-- panel without a configuration change. The first year only feeds lagged indicators.
with loaded as (
    select max(year) as last_loaded_year from {{ ref('int_city_yearbook_values') }}
),

years as (
    select unnest(range(
        {{ var('data_first_year') }},
        least({{ var('data_last_year') }}, coalesce((select last_loaded_year from loaded), {{ var('data_last_year') }})) + 1
    )) as year
)

select
    cities.city_code,
    cast(years.year as integer) as year
from {{ ref('stg_reference__cities') }} as cities
cross join years
where years.year between cities.first_year and cities.last_year
{% if var('panel_universe') == 'balanced_2011_2023' %}
    and cities.is_balanced_2011_2023
{% elif var('panel_universe') != 'all' %}
    {{ exceptions.raise_compiler_error("var panel_universe must be 'balanced_2011_2023' or 'all', got " ~ var('panel_universe')) }}
{% endif %}
