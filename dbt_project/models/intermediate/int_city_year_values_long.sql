-- Every city-year of the spine × every yearbook/patent variable, with interior gaps filled by
-- linear interpolation between the nearest reported years of the same city (flagged
-- `is_imputed`). No extrapolation: a gap at either end of a city's series stays NULL.
with reported as (
    select city_code, year, variable, value from {{ ref('stg_city_yearbook__values') }}
    union all
    select city_code, year, variable, value from {{ ref('stg_patents__city_counts') }}
),

deduplicated as (
    -- stg tests guarantee one reported value per city-year-variable; max() only collapses NULLs
    select city_code, year, variable, max(value) as value
    from reported
    where city_code is not null
    group by all
),

variables as (
    select distinct variable from {{ ref('yearbook_headers') }} where source in ('city_yearbook', 'patents')
),

grid as (
    select spine.city_code, spine.year, variables.variable, deduplicated.value
    from {{ ref('int_city_year_spine') }} as spine
    cross join variables
    left join deduplicated using (city_code, year, variable)
),

neighbours as (
    select
        *,
        last_value(case when value is not null then year end ignore nulls) over before_me as prev_year,
        last_value(value ignore nulls) over before_me as prev_value,
        first_value(case when value is not null then year end ignore nulls) over after_me as next_year,
        first_value(value ignore nulls) over after_me as next_value
    from grid
    window
        before_me as (partition by city_code, variable order by year
                      rows between unbounded preceding and 1 preceding),
        after_me as (partition by city_code, variable order by year
                     rows between 1 following and unbounded following)
)

select
    city_code,
    year,
    variable,
    coalesce(
        value,
        prev_value + (next_value - prev_value) * (year - prev_year) / (next_year - prev_year)
    ) as value,
    value is null and prev_year is not null and next_year is not null as is_imputed,
    value is null and (prev_year is null or next_year is null) as is_missing
from neighbours
