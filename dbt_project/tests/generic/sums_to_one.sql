{#- Each group's values add up to 1 within a tolerance. -#}
{% test sums_to_one(model, column_name, group_by, tolerance=1e-12) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as total
from {{ model }}
group by {{ group_by | join(', ') }}
having abs(sum({{ column_name }}) - 1) > {{ tolerance }}
{% endtest %}
