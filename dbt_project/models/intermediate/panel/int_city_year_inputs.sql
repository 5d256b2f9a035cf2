-- Everything the indicators are computed from, one row per city and data year: the wide
-- yearbook and patent variables, the boundary-change flag, firm entry, the national series,
-- last year's values (for growth rates) and the 万美元 series converted to 万元 at the year's
-- average CNY/USD rate.
with joined as (
    select
        variables.*,
        boundary_changes.city_code is not null as has_boundary_change,
        coalesce(firms.new_firms, 0) as new_firms,
        coalesce(firms.new_digital_firms, 0) as new_digital_firms,
        national.usd_cny,
        national.internet_users,
        national.national_gdp_per_capita,
        national.cpi_index,
        lag(variables.gdp) over city_years as gdp_previous_year,
        lag(variables.gdp / variables.pop_total) over city_years as gdp_per_capita_previous_year,
        lag(national.national_gdp_per_capita) over city_years as national_gdp_per_capita_previous_year,
        lag(variables.year) over city_years as previous_year
    from {{ ref('int_city_year_variables') }} as variables
    left join {{ ref('int_city_year_boundary_changes') }} as boundary_changes using (city_code, year)
    left join {{ ref('int_firm_entry') }} as firms using (city_code, year)
    left join {{ ref('int_national_by_year') }} as national using (year)
    window city_years as (partition by variables.city_code order by variables.year)
)

select
    *,
    -- currencies: 万美元 converted at the year's average CNY/USD rate
    trade_total * usd_cny as trade_total_cny,
    fdi * usd_cny as fdi_cny
from joined
