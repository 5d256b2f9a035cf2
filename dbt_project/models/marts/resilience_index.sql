-- The urban economic resilience index (RES): entropy-weighted sum of the 14 normalised
-- indicators, its three dimension scores (each the weighted sum over its indicators, so they
-- add up to the total), and the city's rank within the year (1 = most resilient).
with scored as (
    select
        normalised.city_code,
        normalised.year,
        sum(weights.weight * normalised.normalised)
            filter (where normalised.dimension = 'resistance_recovery') as resistance_recovery,
        sum(weights.weight * normalised.normalised)
            filter (where normalised.dimension = 'adaptability_adjustment') as adaptability_adjustment,
        sum(weights.weight * normalised.normalised)
            filter (where normalised.dimension = 'innovation_transformation') as innovation_transformation,
        -- NULL when any indicator is missing, rather than a silently smaller score
        case when count(normalised.normalised) = count(*)
            then sum(weights.weight * normalised.normalised) end as res
    from {{ ref('int_index_normalised') }} as normalised
    inner join {{ ref('index_weights') }} as weights using (index_name, indicator)
    where normalised.index_name = 'resilience'
    group by normalised.city_code, normalised.year
)

select
    scored.city_code,
    attributes.city_name,
    attributes.city_name_en,
    attributes.province_name,
    scored.year,
    scored.resistance_recovery,
    scored.adaptability_adjustment,
    scored.innovation_transformation,
    scored.res,
    cast(rank() over (partition by scored.year order by scored.res desc) as integer) as rank_in_year,
    '{{ var("vintage") }}' as vintage
from scored
inner join {{ ref('int_city_attributes') }} as attributes using (city_code)
