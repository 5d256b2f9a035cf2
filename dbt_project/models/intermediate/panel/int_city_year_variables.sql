-- The yearbook and patent variables wide, one row per city-year of the spine (interpolated where
-- flagged), with the counts of imputed, extrapolated and missing cells.
-- depends_on: {{ ref('yearbook_headers') }}
{% set variables_query %}
select distinct variable from {{ ref('yearbook_headers') }}
where source in ('city_yearbook', 'patents', 'digital_finance') order by variable
{% endset %}
{% set variables = run_query(variables_query).columns[0].values() if execute else [] %}
select
    city_code,
    year,
    {% for v in variables %}
    max(value) filter (where variable = '{{ v }}') as {{ v }},
    {% endfor %}
    count(*) filter (where is_imputed) as n_imputed_values,
    count(*) filter (where is_extrapolated) as n_extrapolated_values,
    count(*) filter (where is_missing) as n_missing_values,
    string_agg(variable, ',' order by variable) filter (where is_imputed) as imputed_variables,
    bool_or(is_aggregated) as is_boundary_aggregated
from {{ ref('int_city_year_values_long') }}
group by city_code, year
