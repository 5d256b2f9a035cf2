-- Scores of every index at every level of its hierarchy (index, criterion, dimension,
-- sub_dimension), one row per index, level, node and city-year.
select index_name, level, node, city_code, year, score, n_indicators, scope as weight_scope,
       '{{ vintage() }}' as vintage
from {{ ref('int_index_scores') }}
