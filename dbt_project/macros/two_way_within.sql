{#- Two-way within transformation (unit and time fixed effects) of `columns`, in SQL.

    Rows with a NULL in any of the columns are dropped first (listwise, as a regression on
    them would). Then alternating projections in one recursive CTE (USING KEY keeps only the
    latest sweep): each sweep subtracts unit means, then time means, until the largest change
    of any value, relative to (1 + the column's largest absolute value), is ≤ `tolerance`.
    On a balanced panel the first sweep is exactly the closed form x − x̄ᵢ − x̄ₜ + x̄ and the
    second only confirms it (within_method = 'closed_form'); on an unbalanced panel the sweeps
    converge to the exact projection (within_method = 'alternating_projections'). A panel that
    has not converged after `max_iterations` sweeps keeps within_delta > tolerance, which the
    model's test turns into an error: the estimand is never changed silently.
-#}
{% macro two_way_within(relation, unit, time, columns, tolerance=1e-13, max_iterations=10000) %}
with complete as (
    select {{ unit }} as unit_id, {{ time }} as time_id,
        {% for c in columns %}cast({{ c }} as double) as {{ c }}{{ ',' if not loop.last }}{% endfor %}
    from {{ relation }}
    where {% for c in columns %}{{ c }} is not null{{ ' and ' if not loop.last }}{% endfor %}
),

shape as (
    select count(*) = count(distinct unit_id) * count(distinct time_id)
           and count(*) = count(distinct (unit_id, time_id)) as is_balanced
    from complete
),

sweeps as (
    select * from (
        with recursive ap(unit_id, time_id, {{ columns | join(', ') }}, iteration, delta) using key (unit_id, time_id) as (
            select unit_id, time_id,
                {% for c in columns %}{{ c }} - avg({{ c }}) over (),{% endfor %}
                0, 1e300
            from complete
            union
            select unit_id, time_id,
                {% for c in columns %}{{ c }}_t,{% endfor %}
                iteration + 1,
                greatest(
                    {% for c in columns %}
                    max(abs({{ c }} - {{ c }}_t)) over () / (1 + max(abs({{ c }})) over ()){{ ',' if not loop.last }}
                    {% endfor %}
                    {% if columns | length == 1 %}, 0{% endif %}
                )
            from (
                select *,
                    {% for c in columns %}{{ c }}_u - avg({{ c }}_u) over (partition by time_id) as {{ c }}_t{{ ',' if not loop.last }}{% endfor %}
                from (
                    select *,
                        {% for c in columns %}{{ c }} - avg({{ c }}) over (partition by unit_id) as {{ c }}_u{{ ',' if not loop.last }}{% endfor %}
                    from ap
                )
            )
            where iteration < {{ max_iterations }} and delta > {{ tolerance }}
        )
        select * from ap
    )
)

select
    sweeps.unit_id as {{ unit }},
    sweeps.time_id as {{ time }},
    {% for c in columns %}sweeps.{{ c }},{% endfor %}
    case when shape.is_balanced then 'closed_form' else 'alternating_projections' end as within_method,
    sweeps.iteration as within_iterations,
    sweeps.delta as within_delta
from sweeps
cross join shape
{% endmacro %}
