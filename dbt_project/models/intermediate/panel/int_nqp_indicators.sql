-- The new-quality-productivity indicators (the NQP study's Table 1 and the NQP → resilience
-- study's hierarchy; seed index_spec, indices nqp and nqp_hierarchical) that are not also
-- resilience indicators, per city-year.
select
    city_code,
    year,
    (edu_expenditure + sci_expenditure) / fiscal_expenditure as innovation_input_share,
    sci_expenditure / fiscal_expenditure as sci_expenditure_share,
    electricity_use / gdp as energy_intensity,
    so2_industrial / gdp as so2_intensity,
    new_firms / (pop_total * 1e4) * 100 as new_firms_per_100,
    emp_it / emp_total as it_employment_share,
    broadband_users / pop_total * 100 as internet_per_100,
    mobile_users / pop_total * 100 as mobile_per_100,
    road_area / pop_total as road_area_per_capita
from {{ ref('int_city_year_inputs') }}
