{#- Entropy-weight method, in SQL (docs/methods.md § 10).

    Both macros work per weighting group: one index (index_name) and one scope:
      scope 'panel' – one group over all city-years (weight_year NULL);
      scope 'year'  – one group per year (weight_year = year).

    normalise_indicators(inputs): min-max normalisation of each indicator within its group,
    direction-aware:
        positive: x' = (x - min) / (max - min);  negative: x' = (max - x) / (max - min).
    A constant indicator (max = min) gets x' = 0 and, below, entropy 1 and weight 0.

    entropy_weights(normalised): per indicator j over its n rows,
        p_ij = x'_ij / Σ_i x'_ij,   e_j = -(1 / ln n) Σ_i p_ij ln p_ij   (0·ln 0 = 0),
        d_j = 1 - e_j,              w_j = d_j / Σ_j d_j   (within the index and group).
    No shift of the normalised values (some papers add 0.0001 before taking logs; we do not).
-#}
{% macro normalise_indicators(inputs) %}
with scoped as (
    select *, 'panel' as scope, cast(null as integer) as weight_year from {{ inputs }}
    union all
    select *, 'year' as scope, year as weight_year from {{ inputs }}
),

bounds as (
    select scope, weight_year, index_name, indicator,
           min(value) as min_value, max(value) as max_value, count(value) as n_obs
    from scoped
    group by all
)

select
    scoped.*,
    bounds.min_value,
    bounds.max_value,
    bounds.n_obs,
    case
        when bounds.max_value = bounds.min_value then 0.0
        when scoped.direction = 'negative'
            then (bounds.max_value - scoped.value) / (bounds.max_value - bounds.min_value)
        else (scoped.value - bounds.min_value) / (bounds.max_value - bounds.min_value)
    end as normalised
from scoped
inner join bounds
    on bounds.scope = scoped.scope
    and bounds.weight_year is not distinct from scoped.weight_year
    and bounds.index_name = scoped.index_name
    and bounds.indicator = scoped.indicator
{% endmacro %}

{% macro entropy_weights(normalised) %}
with totals as (
    select
        *,
        sum(normalised) over (partition by scope, weight_year, index_name, indicator) as indicator_total
    from {{ normalised }}
    where normalised is not null
),

entropy as (
    select
        scope,
        weight_year,
        index_name,
        any_value(criterion) as criterion,
        any_value(dimension) as dimension,
        any_value(sub_dimension) as sub_dimension,
        indicator,
        any_value(direction) as direction,
        any_value(min_value) as min_value,
        any_value(max_value) as max_value,
        count(*) as n_obs,
        case
            when any_value(indicator_total) = 0 then 1.0
            else -sum(
                case when normalised > 0
                    then (normalised / indicator_total) * ln(normalised / indicator_total)
                    else 0.0
                end
            ) / ln(count(*))
        end as entropy
    from totals
    group by scope, weight_year, index_name, indicator
)

select
    *,
    1 - entropy as divergence,
    (1 - entropy) / sum(1 - entropy) over (partition by scope, weight_year, index_name) as weight
from entropy
{% endmacro %}
