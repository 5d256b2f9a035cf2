-- National series by year, one column per variable (national GDP per capita, internet users,
-- CNY/USD rate, CPI).
select
    year,
    max(value) filter (where variable = 'national_gdp_per_capita') as national_gdp_per_capita,
    max(value) filter (where variable = 'internet_users') as internet_users,
    max(value) filter (where variable = 'usd_cny') as usd_cny,
    max(value) filter (where variable = 'cpi_index') as cpi_index
from {{ ref('int_national_indicators') }}
group by year
