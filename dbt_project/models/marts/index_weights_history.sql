-- Every published vintage's entropy weights, kept (see index_history).
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}
select
    '{{ vintage() }}' as vintage,
    index_name,
    scope,
    weight_year,
    dimension,
    indicator,
    direction,
    n_obs,
    min_value,
    max_value,
    weight,
    current_timestamp as built_at
from {{ ref('index_weights') }}
{% if is_incremental() %}
where not exists (select 1 from {{ this }} where vintage = '{{ vintage() }}')
{% endif %}
