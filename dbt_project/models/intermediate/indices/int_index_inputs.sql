-- Long indicator values of every index in the index_spec seed (available indicators only),
-- for the panel years.
-- depends_on: {{ ref('index_spec') }}
{% set spec_query %}select distinct indicator from {{ ref('index_spec') }} where available order by 1{% endset %}
{% set indicators = run_query(spec_query).columns[0].values() if execute else ['gdp_per_capita'] %}
with panel as (
    select city_code, year, {{ indicators | join(', ') }}
    from {{ ref('int_city_year_panel') }}
    where year between {{ var('panel_first_year') }} and {{ var('panel_last_year') }}
),

long_values as (
    select city_code, year, indicator, value
    from panel
    unpivot include nulls (value for indicator in ({{ indicators | join(', ') }}))
)

select
    spec.index_name,
    spec.criterion,
    spec.dimension,
    spec.sub_dimension,
    spec.indicator,
    spec.direction,
    long_values.city_code,
    long_values.year,
    cast(long_values.value as double) as value
from long_values
inner join {{ ref('index_spec') }} as spec using (indicator)
where spec.available
