-- Weights at every level of every index hierarchy: a node's weight is the sum of the entropy
-- weights of its indicators (so each level's node weights sum to 1 per index, scope and year).
with levels as (
    select
        index_name,
        scope,
        weight_year,
        {{ hierarchy_level_and_node() }},
        sum(weight) as weight,
        count(*) as n_indicators
    from {{ ref('int_index_weights') }}
    group by grouping sets (
        (index_name, scope, weight_year, criterion),
        (index_name, scope, weight_year, dimension),
        (index_name, scope, weight_year, sub_dimension)
    )
)

select index_name, scope, weight_year, level, node, weight, n_indicators,
       '{{ vintage() }}' as vintage
from levels
-- a two-level index has no criterion: its empty criterion group is not a node
where not (level = 'criterion' and node = index_name)
