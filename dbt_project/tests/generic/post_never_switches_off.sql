{#- Once a unit is treated (post = true) it stays treated in every later period. -#}
{% test post_never_switches_off(model, unit, time, group_by=[], column_name='post') %}
with ordered as (
    select
        *,
        lag({{ column_name }}) over (
            partition by {% for g in group_by %}{{ g }}, {% endfor %}{{ unit }} order by {{ time }}
        ) as previous_post
    from {{ model }}
)
select * from ordered where previous_post and not {{ column_name }}
{% endtest %}
