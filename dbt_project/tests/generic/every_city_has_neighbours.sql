{#- Every city of the panel has at least one neighbour in every scheme of a spatial weights model
    (a city without one would be a zero row of W, silently dropping it from the spatial lag). -#}
{% test every_city_has_neighbours(model) %}
with panel_cities as (
    select distinct city_code from {{ ref('int_city_year_spine') }}
),

schemes as (
    select distinct scheme from {{ model }}
)

select panel_cities.city_code, schemes.scheme
from panel_cities
cross join schemes
where not exists (
    select 1 from {{ model }} as w
    where w.city_code = panel_cities.city_code and w.scheme = schemes.scheme
)
{% endtest %}
