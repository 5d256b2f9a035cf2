-- The indicators of the urban economic resilience index (the resilience study's Table 1; seed
-- index_spec, index resilience) per city-year; units in docs/data-dictionary.md.
select
    city_code,
    year,
    gdp * 1e4 / (pop_total * 1e4) as gdp_per_capita,
    trade_total * usd_cny / gdp as trade_dependency,
    unemp_insured / (pop_total * 1e4) as unemp_insurance_coverage,
    savings * 1e4 / (pop_total * 1e4) as savings_per_capita,
    pop_urban / pop_total as urbanisation_rate,
    retail_sales / gdp as consumption_capacity,
    case when previous_year = year - 1 then gdp / gdp_previous_year - 1 end as gdp_growth,
    fiscal_revenue / fiscal_expenditure as fiscal_self_sufficiency,
    (deposits + loans) / gdp as financial_development,
    hospital_beds / pop_total as hospital_beds_per_10k,
    (edu_expenditure + sci_expenditure) / gdp as edu_sci_expenditure_share,
    va_tertiary / va_secondary as industrial_advancement,
    college_students / (pop_total * 1e4) * 1e5 as human_capital
from {{ ref('int_city_year_inputs') }}
