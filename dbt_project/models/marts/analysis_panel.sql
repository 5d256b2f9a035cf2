-- One row per city-year of the panel: the outcome indices, the DID of var policy, the controls
-- and mechanism variables of the studies, heterogeneity attributes and instrument inputs.
-- Everything the estimation steps read.
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
    resilience.res,
    resilience.resistance_recovery,
    resilience.adaptability_adjustment,
    resilience.innovation_transformation,
    nqp.nqp,
    nqp.innovative_productivity,
    nqp.green_productivity,
    nqp.digital_productivity,
    nqp_h.nqp_h,
    sensitivity.sensitivity,
    sensitivity.sensitivity_centred,
    policy.treat,
    policy.post,
    policy.did,
    policy.adoption_year,
    policy.event_time,
    policy.event_time_binned,
    panel.eocden,
    panel.traff,
    panel.gove,
    panel.inv,
    panel.salary,
    panel.ln_gdp_per_capita,
    panel.industrial_advancement as industrial_structure,
    panel.consumption_capacity as consumption_ratio,
    panel.loans_to_gdp,
    panel.financial_development as deposits_loans_to_gdp,
    panel.sci_expenditure_share,
    panel.tech_talent_share,
    panel.log_new_digital_firms,
    panel.new_digital_firms,
    panel.new_firms,
    panel.log_digital_patent_applications,
    panel.log_green_patent_applications,
    panel.digital_finance,
    attributes.size_tier,
    attributes.size_tier_group,
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
    panel.has_boundary_change,
    '{{ vintage() }}' as vintage
from {{ ref('int_city_year_panel') }} as panel
inner join {{ ref('resilience_index') }} as resilience using (city_code, year)
inner join {{ ref('nqp_index') }} as nqp using (city_code, year)
inner join {{ ref('nqp_hierarchical_index') }} as nqp_h using (city_code, year)
inner join {{ ref('economic_resilience_sensitivity') }} as sensitivity using (city_code, year)
inner join policy using (city_code, year)
inner join moderators using (city_code, year)
inner join {{ ref('int_city_attributes') }} as attributes using (city_code)
