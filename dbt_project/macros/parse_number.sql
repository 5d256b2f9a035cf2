{#- Yearbook cell text → DOUBLE. Missing markers (—, ..., blank, -, NA) become NULL; thousands
    separators and footnote marks (*, ①, a superscript letter) are stripped first. Text that
    is neither missing nor a number stays NULL and is counted by `is_unparsed_number`. -#}
{% macro missing_markers() -%}
    ('', '—', '——', '-', '--', '…', '...', '……', 'na', 'n.a.', 'null', '无')
{%- endmacro %}

{% macro parse_number(expr) -%}
    try_cast(nullif(regexp_replace(regexp_replace(trim({{ expr }}), '[,，\s]', '', 'g'),
                                   '[^0-9eE+\-.]+$', ''), '') as double)
{%- endmacro %}

{% macro is_missing_marker(expr) -%}
    (lower(coalesce(trim({{ expr }}), '')) in {{ missing_markers() }})
{%- endmacro %}

{% macro is_unparsed_number(expr) -%}
    (not {{ is_missing_marker(expr) }} and {{ parse_number(expr) }} is null)
{%- endmacro %}
