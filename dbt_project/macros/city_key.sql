{#- The matching key of a city name: lower case, without the noise characters of the seed
    name_rules (rule noise_pattern), which warehouse/names.py:city_key reads too. Seed names are
    already NFKC, so only the noise characters and case remain to remove.
    The pattern is written out here, not read from the seed, because tests/test_names.py runs
    this macro's body as plain SQL (outside dbt) against the Python key of every alias; the dbt
    test assert_city_key_macro_follows_name_rules fails the build if it drifts from the seed. -#}
{% macro city_key(expr) -%}
    lower(regexp_replace({{ expr }}, '[\s''’`·.\-]', '', 'g'))
{%- endmacro %}
