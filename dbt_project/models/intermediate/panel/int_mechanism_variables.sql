-- Mechanism variables of the studies per city-year: technology talent, digital firm entry,
-- digital and green innovation.
select
    city_code,
    year,
    (emp_it + emp_research) / emp_total as tech_talent_share,
    ln(1 + new_digital_firms) as log_new_digital_firms,
    ln(1 + digital_patent_applications) as log_digital_patent_applications,
    ln(1 + green_patent_applications) as log_green_patent_applications
from {{ ref('int_city_year_inputs') }}
