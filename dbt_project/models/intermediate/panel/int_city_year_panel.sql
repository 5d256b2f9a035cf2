-- The harmonised city-year panel, wide: the inputs (yearbook and patent variables, interpolated
-- where flagged; firm entry; national series) joined to the derived indicators, controls and
-- mechanism variables of the studies, each computed in its own model. Covers the data years;
-- marts cut it to the panel years. The index_spec seed names its indicator columns.
select
    inputs.*,
    resilience.* exclude (city_code, year),
    nqp.* exclude (city_code, year),
    growth.* exclude (city_code, year),
    controls.* exclude (city_code, year),
    mechanisms.* exclude (city_code, year)
from {{ ref('int_city_year_inputs') }} as inputs
left join {{ ref('int_resilience_indicators') }} as resilience
    on resilience.city_code = inputs.city_code and resilience.year = inputs.year
left join {{ ref('int_nqp_indicators') }} as nqp
    on nqp.city_code = inputs.city_code and nqp.year = inputs.year
left join {{ ref('int_gdp_per_capita_growth') }} as growth
    on growth.city_code = inputs.city_code and growth.year = inputs.year
left join {{ ref('int_study_controls') }} as controls
    on controls.city_code = inputs.city_code and controls.year = inputs.year
left join {{ ref('int_mechanism_variables') }} as mechanisms
    on mechanisms.city_code = inputs.city_code and mechanisms.year = inputs.year
