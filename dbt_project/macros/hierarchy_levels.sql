{#- Inside a GROUP BY GROUPING SETS over criterion / dimension / sub_dimension (and optionally
    the whole index): which level a row aggregates, and the name of its node. -#}
{% macro hierarchy_level_and_node() -%}
        case
            when grouping(criterion) = 0 then 'criterion'
            when grouping(dimension) = 0 then 'dimension'
            when grouping(sub_dimension) = 0 then 'sub_dimension'
            else 'index'
        end as level,
        coalesce(criterion, dimension, sub_dimension, index_name) as node
{%- endmacro %}
