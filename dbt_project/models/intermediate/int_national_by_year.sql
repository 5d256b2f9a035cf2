select
    year,
    max(value) filter (where variable = 'national_gdp_per_capita') as national_gdp_per_capita,
    max(value) filter (where variable = 'internet_users') as internet_users,
    max(value) filter (where variable = 'usd_cny') as usd_cny,
    max(value) filter (where variable = 'cpi_index') as cpi_index
from {{ ref('stg_national__indicators') }}
group by year
