-- Every published vintage's index values, kept: entropy weights are re-estimated on the whole
-- panel at each refresh, so adding a year revises history. Query any vintage with
-- `where vintage = '…'`. Append-only (incremental); a refused refresh never reaches it.
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}
select
    '{{ vintage() }}' as vintage,
    index_name,
    level,
    node,
    city_code,
    year,
    score,
    weight_scope,
    current_timestamp as built_at
from {{ ref('index_scores') }}
{% if is_incremental() %}
where not exists (select 1 from {{ this }} where vintage = '{{ vintage() }}')
{% endif %}
