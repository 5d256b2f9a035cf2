{#- The refresh that builds this vintage. From the environment (set by warehouse/dbt_runner.py),
    not from --vars: a var that changes at every refresh would force dbt to parse the whole
    project again each time, an environment variable only the files that read it. -#}
{% macro vintage() -%}
{{ return(env_var('CITYRES_VINTAGE', var('vintage'))) }}
{%- endmacro %}
