-- City-years that are the first data year on a new geography: a merger (the absorbing city, only
-- under var boundary_policy = as_reported) or a county transfer.
select distinct city_code, coalesce(valid_from_year, valid_to_year + 1) as year
from {{ ref('stg_reference__city_aliases') }}
where change_type = 'boundary_transfer'
union
select distinct city_code, valid_to_year + 1 as year
from {{ ref('stg_reference__city_aliases') }}
where change_type = 'merged_into' and '{{ var("boundary_policy") }}' = 'as_reported'
