-- One row per city-year of the panel: the outcome index, the DID of var policy, the controls
-- and mechanism variables of the resilience study, heterogeneity attributes and instrument
-- inputs. Everything the estimation steps read.
with policy as (
    select * from {{ ref('policy_panel') }} where policy = '{{ var("policy") }}'
),

moderators as (
    select
        city_code,
        year,
        max(did) filter (where policy = 'ip_demonstration_city') as ip_city_post,
        max(did) filter (where policy = 'egov_comprehensive_pilot') as egov_pilot_post,
        bool_or(treat) filter (where policy = 'ip_demonstration_city') as ip_city,
        bool_or(treat) filter (where policy = 'egov_comprehensive_pilot') as egov_pilot
    from {{ ref('policy_panel') }}
    group by city_code, year
)

select
    panel.city_code,
    attributes.city_name,
    attributes.province_code,
    panel.year,
    idx.res,
    idx.resistance_recovery,
    idx.adaptability_adjustment,
    idx.innovation_transformation,
    policy.treat,
    policy.post,
    policy.did,
    policy.adoption_year,
    policy.event_time,
    panel.eocden,
    panel.traff,
    panel.gove,
    panel.inv,
    panel.salary,
    panel.tech_talent_share,
    panel.log_new_digital_firms,
    panel.new_digital_firms,
    panel.new_firms,
    attributes.size_tier,
    attributes.is_key_city,
    attributes.is_resource_based,
    attributes.region,
    attributes.hu_line_side,
    moderators.ip_city,
    moderators.egov_pilot,
    moderators.ip_city_post,
    moderators.egov_pilot_post,
    attributes.telephones_per_100_1984,
    panel.internet_users,
    panel.n_imputed_values,
    '{{ var("vintage") }}' as vintage
from {{ ref('int_city_year_panel') }} as panel
inner join {{ ref('resilience_index') }} as idx using (city_code, year)
inner join policy using (city_code, year)
inner join moderators using (city_code, year)
inner join {{ ref('int_city_attributes') }} as attributes using (city_code)
