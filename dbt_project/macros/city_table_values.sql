{#- Typed values of one city-keyed source: header mapped to a variable through the
    yearbook_headers seed, unit converted to the variable's canonical unit, city name resolved
    through the alias seed (int_city_names_resolved). Cells come from the loads in force
    (int_city_cells_current); unmapped headers are listed by int_unmapped_headers. -#}
{% macro city_table_values(source_name) %}
select
    names.city_code,
    cells.year,
    headers.variable,
    cells.value_number * units.factor as value,
    headers.canonical_unit as unit,
    coalesce(cells.header_unit, headers.canonical_unit) as delivered_unit,
    cells.value_text,
    cells.is_missing,
    cells.is_unparsed,
    cells.city_name_text,
    cells.header_text,
    cells.load_id,
    cells.file_name,
    cells.source_row,
    cells.source_col
from {{ ref('int_city_cells_current') }} as cells
inner join {{ ref('yearbook_headers') }} as headers
    on headers.source = cells.source and headers.header_base = cells.header_base
left join {{ ref('unit_conversions') }} as units
    on units.unit = coalesce(cells.header_unit, headers.canonical_unit)
    and units.canonical_unit = headers.canonical_unit
left join {{ ref('int_city_names_resolved') }} as names
    on names.source = cells.source
    and names.city_key = cells.city_key
    and names.province_text is not distinct from cells.province_text
    and names.year is not distinct from cells.year
where cells.source = '{{ source_name }}'
{% endmacro %}
