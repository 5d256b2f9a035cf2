-- Martin–Sunley sensitivity index (the NQP → resilience study's eq. 1):
--   R_it = (g_it - g_Nt) / |g_Nt|,
-- g_it the growth of the city's GDP per capita, g_Nt the growth of national GDP per capita.
-- r_centred subtracts the year's cross-city mean (the study "applies a centering transformation").
with panel as (
    select city_code, year, gdp_per_capita_growth, national_gdp_per_capita_growth
    from {{ ref('int_gdp_per_capita_growth') }}
    where year between {{ var('panel_first_year') }} and {{ var('panel_last_year') }}
),

scored as (
    select
        *,
        (gdp_per_capita_growth - national_gdp_per_capita_growth)
            / nullif(abs(national_gdp_per_capita_growth), 0) as sensitivity
    from panel
)

select
    city_code,
    year,
    gdp_per_capita_growth,
    national_gdp_per_capita_growth,
    sensitivity,
    sensitivity - avg(sensitivity) over (partition by year) as sensitivity_centred,
    '{{ vintage() }}' as vintage
from scored
