-- The harmonised city-year panel, wide: yearbook and patent variables (interpolated where
-- flagged), firm entry, national series, and the derived indicators, controls and mechanism
-- variables of the studies. Covers the data years; marts cut it to the panel years.
-- depends_on: {{ ref('yearbook_headers') }}
{% set variables_query %}
select distinct variable from {{ ref('yearbook_headers') }}
where source in ('city_yearbook', 'patents') order by variable
{% endset %}
{% set variables = run_query(variables_query).columns[0].values() if execute else [] %}
with wide as (
    select
        city_code,
        year,
        {% for v in variables %}
        max(value) filter (where variable = '{{ v }}') as {{ v }},
        {% endfor %}
        count(*) filter (where is_imputed) as n_imputed_values,
        count(*) filter (where is_extrapolated) as n_extrapolated_values,
        count(*) filter (where is_missing) as n_missing_values,
        string_agg(variable, ',' order by variable) filter (where is_imputed) as imputed_variables,
        bool_or(is_aggregated) as is_boundary_aggregated
    from {{ ref('int_city_year_values_long') }}
    group by city_code, year
),

boundary_changes as (
    -- first data year on a new geography: a merger (absorbing city) or a county transfer
    select distinct city_code, coalesce(valid_from_year, valid_to_year + 1) as year
    from {{ ref('stg_reference__city_aliases') }}
    where change_type = 'boundary_transfer'
    union
    select distinct city_code, valid_to_year + 1 as year
    from {{ ref('stg_reference__city_aliases') }}
    where change_type = 'merged_into' and '{{ var("boundary_policy") }}' = 'as_reported'
),

joined as (
    select
        wide.*,
        boundary_changes.city_code is not null as has_boundary_change,
        coalesce(firms.new_firms, 0) as new_firms,
        coalesce(firms.new_digital_firms, 0) as new_digital_firms,
        national.usd_cny,
        national.internet_users,
        national.national_gdp_per_capita,
        national.cpi_index,
        lag(wide.gdp) over city_years as gdp_previous_year,
        lag(wide.gdp / wide.pop_total) over city_years as gdp_per_capita_previous_year,
        lag(national.national_gdp_per_capita) over city_years as national_gdp_per_capita_previous_year,
        lag(wide.year) over city_years as previous_year
    from wide
    left join boundary_changes using (city_code, year)
    left join {{ ref('int_firm_entry') }} as firms using (city_code, year)
    left join {{ ref('int_national_by_year') }} as national using (year)
    window city_years as (partition by wide.city_code order by wide.year)
)

select
    *,
    -- currencies: 万美元 converted at the year's average CNY/USD rate
    trade_total * usd_cny as trade_total_cny,
    fdi * usd_cny as fdi_cny,
    -- resilience indicators (index_spec seed); units in docs/data-dictionary.md
    gdp * 1e4 / (pop_total * 1e4) as gdp_per_capita,
    trade_total * usd_cny / gdp as trade_dependency,
    unemp_insured / (pop_total * 1e4) as unemp_insurance_coverage,
    savings * 1e4 / (pop_total * 1e4) as savings_per_capita,
    pop_urban / pop_total as urbanisation_rate,
    retail_sales / gdp as consumption_capacity,
    case when previous_year = year - 1 then gdp / gdp_previous_year - 1 end as gdp_growth,
    fiscal_revenue / fiscal_expenditure as fiscal_self_sufficiency,
    (deposits + loans) / gdp as financial_development,
    hospital_beds / pop_total as hospital_beds_per_10k,
    (edu_expenditure + sci_expenditure) / gdp as edu_sci_expenditure_share,
    va_tertiary / va_secondary as industrial_advancement,
    college_students / (pop_total * 1e4) * 1e5 as human_capital,
    -- new-quality-productivity indicators
    (edu_expenditure + sci_expenditure) / fiscal_expenditure as innovation_input_share,
    sci_expenditure / fiscal_expenditure as sci_expenditure_share,
    electricity_use / gdp as energy_intensity,
    so2_industrial / gdp as so2_intensity,
    new_firms / (pop_total * 1e4) * 100 as new_firms_per_100,
    emp_it / emp_total as it_employment_share,
    broadband_users / pop_total * 100 as internet_per_100,
    mobile_users / pop_total * 100 as mobile_per_100,
    road_area / pop_total as road_area_per_capita,
    -- Martin–Sunley sensitivity: growth of GDP per capita relative to the nation's
    case when previous_year = year - 1
        then (gdp / pop_total) / gdp_per_capita_previous_year - 1 end as gdp_per_capita_growth,
    national_gdp_per_capita / national_gdp_per_capita_previous_year - 1 as national_gdp_per_capita_growth,
    -- controls of the resilience study (Table 3)
    ln(gdp / land_area) as eocden,
    road_area / land_area as traff,
    fiscal_expenditure / gdp as gove,
    ln(1 + fdi) as inv,
    ln(avg_wage) as salary,
    -- controls of the NQP study (Table 3) and the NQP → resilience study
    ln(gdp / pop_total) as ln_gdp_per_capita,
    loans / gdp as loans_to_gdp,
    -- mechanism variables
    (emp_it + emp_research) / emp_total as tech_talent_share,
    ln(1 + new_digital_firms) as log_new_digital_firms,
    ln(1 + digital_patent_applications) as log_digital_patent_applications,
    ln(1 + green_patent_applications) as log_green_patent_applications
from joined
