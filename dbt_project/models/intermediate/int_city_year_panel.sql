-- The harmonised city-year panel, wide: yearbook and patent variables (interpolated where
-- flagged), firm entry, national series, and the derived indicators, controls and mechanism
-- variables of the studies. Covers the data years; marts cut it to the panel years.
{% set variables = [
    'pop_total', 'pop_urban', 'land_area', 'gdp', 'va_secondary', 'va_tertiary', 'trade_total',
    'fdi', 'unemp_insured', 'savings', 'retail_sales', 'fiscal_revenue', 'fiscal_expenditure',
    'edu_expenditure', 'sci_expenditure', 'deposits', 'loans', 'hospital_beds',
    'college_students', 'road_area', 'avg_wage', 'emp_total', 'emp_it', 'emp_research',
    'patents_granted', 'invention_patents_granted', 'green_patent_applications',
    'digital_patent_applications'
] %}
with wide as (
    select
        city_code,
        year,
        {% for v in variables %}
        max(value) filter (where variable = '{{ v }}') as {{ v }},
        {% endfor %}
        count(*) filter (where is_imputed) as n_imputed_values,
        count(*) filter (where is_missing) as n_missing_values,
        string_agg(variable, ',' order by variable) filter (where is_imputed) as imputed_variables
    from {{ ref('int_city_year_values_long') }}
    group by city_code, year
),

joined as (
    select
        wide.*,
        coalesce(firms.new_firms, 0) as new_firms,
        coalesce(firms.new_digital_firms, 0) as new_digital_firms,
        national.usd_cny,
        national.internet_users,
        national.national_gdp_per_capita,
        national.cpi_index,
        lag(wide.gdp) over (partition by wide.city_code order by wide.year) as gdp_previous_year,
        lag(wide.year) over (partition by wide.city_code order by wide.year) as previous_year
    from wide
    left join {{ ref('int_firm_entry') }} as firms using (city_code, year)
    left join {{ ref('int_national_by_year') }} as national using (year)
)

select
    *,
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
    -- controls of the resilience study (Table 3)
    ln(gdp / land_area) as eocden,
    road_area / land_area as traff,
    fiscal_expenditure / gdp as gove,
    ln(1 + fdi) as inv,
    ln(avg_wage) as salary,
    -- mechanism variables (Table 5)
    (emp_it + emp_research) / emp_total as tech_talent_share,
    ln(1 + new_digital_firms) as log_new_digital_firms
from joined
