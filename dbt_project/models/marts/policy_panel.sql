-- Every policy of the reference seed × every city-year of the panel: treated group, adoption
-- year (first treated year: the seed's `year_effective`, `year_effective_alt` or
-- `year_staggered` as var adoption_dates says; coding var policy_coding), post,
-- did = treat × post, event time and event time binned at the window of vars event_time_min /
-- event_time_max. Post never switches off once a city is treated.
with adoptions as (
    {%- set date_columns = {'effective': 'year_effective', 'alternative': 'year_effective_alt',
                            'staggered': 'year_staggered'} %}
    {%- if var('adoption_dates') not in date_columns %}
    {{ exceptions.raise_compiler_error("var adoption_dates must be one of effective, alternative, staggered; got '" ~ var('adoption_dates') ~ "'") }}
    {%- endif %}
    -- a policy without dates of the chosen kind falls back to year_effective
    select policy, city_code, min(coalesce({{ date_columns[var('adoption_dates')] }}, year_effective)) as adoption_year
    from {{ ref('ref_policies') }}
    where coding = '{{ var("policy_coding") }}'
    group by policy, city_code
),

policies as (
    select distinct policy from {{ ref('ref_policies') }}
)

select
    spine.city_code,
    spine.year,
    policies.policy,
    adoptions.adoption_year is not null as treat,
    adoptions.adoption_year,
    coalesce(spine.year >= adoptions.adoption_year, false) as post,
    cast(coalesce(spine.year >= adoptions.adoption_year, false) as integer) as did,
    spine.year - adoptions.adoption_year as event_time,
    least(greatest(spine.year - adoptions.adoption_year, {{ var('event_time_min') }}),
          {{ var('event_time_max') }}) as event_time_binned,
    adoptions.adoption_year is null as never_treated,
    '{{ vintage() }}' as vintage
from {{ ref('int_city_year_spine') }} as spine
cross join policies
left join adoptions on adoptions.policy = policies.policy and adoptions.city_code = spine.city_code
where spine.year between {{ var('panel_first_year') }} and {{ var('panel_last_year') }}
