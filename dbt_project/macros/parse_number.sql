{#- Yearbook cell text → DOUBLE, with the grammar of warehouse/cells.py (one definition, two
    implementations; tests/test_cells.py checks that they agree). Missing markers (—, ..., blank,
    -, NA) become NULL. Trailing footnote marks (*, #, △, ▲, ①…⑳, superscript digits) and one
    trailing % are dropped, full-width digits and punctuation read as ASCII; the rest must be a
    number whose thousands separators (, or a space) come in groups of three. Text that is neither
    missing nor such a number stays NULL and is counted by `is_unparsed_number` (ingest refuses
    such a file before it gets here). -#}
{% macro missing_markers() -%}
    ('', '—', '——', '-', '--', '…', '...', '……', 'na', 'n.a.', 'null', '无')
{%- endmacro %}

{% macro clean_number_text(expr) -%}
    regexp_replace(
        translate(regexp_replace(trim({{ expr }}), '[*#△▲①-⑳⁰¹²³⁴-⁹]+$', ''),
                  '０１２３４５６７８９，．－＋−', '0123456789,.-+-'),
        '%$', '')
{%- endmacro %}

{% macro parse_number(expr) -%}
    case when regexp_full_match({{ clean_number_text(expr) }},
                                '[+-]?(?:(?:[0-9]{1,3}(?:[, ][0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?')
         then cast(regexp_replace({{ clean_number_text(expr) }}, '[, ]', '', 'g') as double) end
{%- endmacro %}

{% macro is_missing_marker(expr) -%}
    (lower(coalesce(trim({{ expr }}), '')) in {{ missing_markers() }})
{%- endmacro %}

{% macro is_unparsed_number(expr) -%}
    (not {{ is_missing_marker(expr) }} and {{ parse_number(expr) }} is null)
{%- endmacro %}
