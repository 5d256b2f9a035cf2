-- Control variables of the studies per city-year: the resilience study's Table 3 (eocden, traff,
-- gove, inv, salary), and the NQP study's and the NQP → resilience study's (ln GDP per capita,
-- loans / GDP; the others are indicators: industrial_advancement, consumption_capacity,
-- financial_development, sci_expenditure_share).
select
    city_code,
    year,
    ln(gdp / land_area) as eocden,
    road_area / land_area as traff,
    fiscal_expenditure / gdp as gove,
    ln(1 + fdi) as inv,
    ln(avg_wage) as salary,
    ln(gdp / pop_total) as ln_gdp_per_capita,
    loans / gdp as loans_to_gdp
from {{ ref('int_city_year_inputs') }}
