-- Inputs of the Martin–Sunley sensitivity index: growth of the city's GDP per capita over the
-- previous year, and of the nation's.
select
    city_code,
    year,
    case when previous_year = year - 1
        then (gdp / pop_total) / gdp_per_capita_previous_year - 1 end as gdp_per_capita_growth,
    national_gdp_per_capita / national_gdp_per_capita_previous_year - 1 as national_gdp_per_capita_growth
from {{ ref('int_city_year_inputs') }}
