-- Reported yearbook, patent and digital-finance values per city, year and variable, on the geography chosen by
-- var boundary_policy. Under current_boundaries the totals of a city that was later merged
-- (Laiwu → Jinan, 2019) are added to the absorbing city for the years before the merger;
-- rates and averages are combined with the weight the yearbook_headers seed names.
with reported as (
    select city_code, year, variable, value from {{ ref('int_city_yearbook_values') }}
    union all
    select city_code, year, variable, value from {{ ref('int_patent_city_counts') }}
    union all
    select city_code, year, variable, value from {{ ref('int_digital_finance_values') }}
),

deduplicated as (
    -- stg tests guarantee one reported value per city-year-variable; max() only collapses NULLs
    select city_code, year, variable, max(value) as value
    from reported
    where city_code is not null
    group by all
),

{% if var('boundary_policy') == 'current_boundaries' %}
mergers as (
    select distinct alias_code as from_city_code, city_code as to_city_code, valid_to_year as last_year
    from {{ ref('stg_reference__city_aliases') }}
    where change_type = 'merged_into' and alias_code is not null
),

mapped as (
    select
        coalesce(mergers.to_city_code, deduplicated.city_code) as city_code,
        deduplicated.year,
        deduplicated.variable,
        deduplicated.value,
        deduplicated.city_code as reporting_city_code
    from deduplicated
    left join mergers
        on mergers.from_city_code = deduplicated.city_code and deduplicated.year <= mergers.last_year
),

weighted as (
    select
        mapped.*,
        headers.aggregation,
        weights.value as weight
    from mapped
    inner join (select distinct variable, aggregation, weight_variable from {{ ref('yearbook_headers') }}) as headers
        using (variable)
    left join deduplicated as weights
        on weights.city_code = mapped.reporting_city_code and weights.year = mapped.year
        and weights.variable = headers.weight_variable
)

select
    city_code,
    year,
    variable,
    case
        when any_value(aggregation) = 'weighted_mean' then sum(value * weight) / sum(weight)
        -- a total is only complete when every contributing city reported it
        when count(value) = count(*) then sum(value)
    end as value,
    count(*) > 1 as is_aggregated
from weighted
group by city_code, year, variable
{% elif var('boundary_policy') == 'as_reported' %}
final as (select *, false as is_aggregated from deduplicated)
select * from final
{% else %}
{{ exceptions.raise_compiler_error("var boundary_policy must be 'as_reported' or 'current_boundaries', got " ~ var('boundary_policy')) }}
{% endif %}
