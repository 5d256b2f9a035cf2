-- Scores of every index at every level of its hierarchy, for the scope of var entropy_scope:
-- level 'index' (the composite), 'criterion', 'dimension' and 'sub_dimension'. A node's score
-- is Σ w_j·x'_j over its indicators, so the scores of a level add up to the index. A score is
-- NULL when one of its indicators is missing for the city-year (never a silently smaller sum).
{% if var('entropy_scope') not in ('panel', 'year') %}
{{ exceptions.raise_compiler_error("var entropy_scope must be 'panel' or 'year', got " ~ var('entropy_scope')) }}
{% endif %}
with contributions as (
    select
        normalised.index_name,
        normalised.criterion,
        normalised.dimension,
        normalised.sub_dimension,
        normalised.city_code,
        normalised.year,
        weights.weight * normalised.normalised as contribution
    from {{ ref('int_index_normalised') }} as normalised
    inner join {{ ref('int_index_weights') }} as weights
        on weights.scope = normalised.scope
        and weights.weight_year is not distinct from normalised.weight_year
        and weights.index_name = normalised.index_name
        and weights.indicator = normalised.indicator
    where normalised.scope = '{{ var("entropy_scope") }}'
),

levels as (
    select
        index_name,
        {{ hierarchy_level_and_node() }},
        grouping(criterion) = 0 and criterion is null
            or grouping(dimension) = 0 and dimension is null
            or grouping(sub_dimension) = 0 and sub_dimension is null as is_empty_node,
        city_code,
        year,
        case when count(contribution) = count(*) then sum(contribution) end as score,
        count(*) as n_indicators
    from contributions
    group by grouping sets (
        (index_name, city_code, year),
        (index_name, criterion, city_code, year),
        (index_name, dimension, city_code, year),
        (index_name, sub_dimension, city_code, year)
    )
)

select index_name, level, node, city_code, year, score, n_indicators,
       '{{ var("entropy_scope") }}' as scope
from levels
where not is_empty_node
