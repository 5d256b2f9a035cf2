{#- The matching key of a city name; same rule as warehouse/names.py:city_key (tested).
    Seed names are already NFKC, so only the noise characters and case remain to remove. -#}
{% macro city_key(expr) -%}
    lower(regexp_replace({{ expr }}, '[\s''’`·.\-]', '', 'g'))
{%- endmacro %}
