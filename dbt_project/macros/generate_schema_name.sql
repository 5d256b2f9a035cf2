{#- Use the configured schema name as is (staging, intermediate, reference, main), so users
    query marts as `resilience_index` rather than `main_marts.resilience_index`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
