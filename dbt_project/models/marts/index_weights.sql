-- Entropy weights of every indicator of every index, estimated on the whole panel.
select
    index_name,
    dimension,
    indicator,
    direction,
    n_obs,
    min_value,
    max_value,
    entropy,
    divergence,
    weight,
    '{{ var("vintage") }}' as vintage
from ({{ entropy_weights(ref('int_index_normalised')) }})
