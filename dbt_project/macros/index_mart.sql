{#- One row per city-year of an index: its composite score (named score_column), the scores of
    the nodes of one hierarchy level as columns, and the rank within the year. -#}
{% macro index_mart(index_name, score_column, level, nodes) %}
with scores as (
    select * from {{ ref('int_index_scores') }} where index_name = '{{ index_name }}'
),

pivoted as (
    select
        city_code,
        year,
        {% for node in nodes %}
        max(score) filter (where level = '{{ level }}' and node = '{{ node }}') as {{ node }},
        {% endfor %}
        max(score) filter (where level = 'index') as {{ score_column }}
    from scores
    group by city_code, year
)

select
    pivoted.city_code,
    attributes.city_name,
    attributes.city_name_en,
    attributes.province_name,
    pivoted.year,
    {% for node in nodes %}
    pivoted.{{ node }},
    {% endfor %}
    pivoted.{{ score_column }},
    cast(rank() over (partition by pivoted.year order by pivoted.{{ score_column }} desc nulls last)
         as integer) as rank_in_year,
    '{{ var("entropy_scope") }}' as weight_scope,
    '{{ vintage() }}' as vintage
from pivoted
inner join {{ ref('int_city_attributes') }} as attributes using (city_code)
{% endmacro %}
