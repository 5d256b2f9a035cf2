-- Every city-year of the spine × every yearbook/patent variable. Interior gaps are filled by
-- linear interpolation between the nearest reported years of the same city (is_imputed). Gaps
-- at either end stay NULL (is_missing) unless var extrapolation = 'nearest', which carries the
-- nearest reported value and flags it (is_extrapolated): nothing is extrapolated silently.
with variables as (
    select distinct variable from {{ ref('yearbook_headers') }} where source in ('city_yearbook', 'patents', 'digital_finance')
),

grid as (
    select spine.city_code, spine.year, variables.variable, reported.value, reported.is_aggregated
    from {{ ref('int_city_year_spine') }} as spine
    cross join variables
    left join {{ ref('int_city_year_values_reported') }} as reported using (city_code, year, variable)
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
),

filled as (
    select
        *,
        value is null and prev_year is not null and next_year is not null as is_imputed,
        value is null and (prev_year is null) <> (next_year is null)
            and '{{ var("extrapolation") }}' = 'nearest' as is_extrapolated
    from neighbours
)

select
    city_code,
    year,
    variable,
    case
        when value is not null then value
        when is_imputed
            then prev_value + (next_value - prev_value) * (year - prev_year) / (next_year - prev_year)
        when is_extrapolated then coalesce(prev_value, next_value)
    end as value,
    case
        when value is not null then 'reported'
        when is_imputed then 'imputed'
        when is_extrapolated then 'extrapolated'
        else 'missing'
    end as coverage,
    is_imputed,
    is_extrapolated,
    value is null and not is_imputed and not is_extrapolated as is_missing,
    coalesce(is_aggregated, false) as is_aggregated
from filled
