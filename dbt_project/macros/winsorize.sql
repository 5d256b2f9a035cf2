{#- Winsorise an expression at the p and 1 − p quantiles (default 1 %), over the whole relation
    or within `partition_by` (e.g. 'year'). Usage: {{ winsorize('eocden') }} as eocden_w.
    quantile_cont interpolates linearly between order statistics (as numpy's default). A missing
    value stays missing: least/greatest skip NULL arguments, so without the case a NULL would
    come out as the lower quantile. -#}
{% macro winsorize(expr, p=0.01, partition_by=none) -%}
    {%- set window = 'over (partition by ' ~ partition_by ~ ')' if partition_by else 'over ()' -%}
    case when ({{ expr }}) is not null then
        least(greatest({{ expr }}, quantile_cont({{ expr }}, {{ p }}) {{ window }}),
              quantile_cont({{ expr }}, {{ 1 - p }}) {{ window }}) end
{%- endmacro %}
