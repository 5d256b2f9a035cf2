-- Entropy weights of every available indicator of every index, for both weighting scopes:
-- 'panel' (one set estimated on all panel city-years; weight_year NULL) and 'year' (one set
-- per year). The index marts use the scope of var entropy_scope.
select
    index_name,
    scope,
    weight_year,
    criterion,
    dimension,
    sub_dimension,
    indicator,
    direction,
    n_obs,
    min_value,
    max_value,
    entropy,
    divergence,
    weight,
    '{{ vintage() }}' as vintage
from {{ ref('int_index_weights') }}
