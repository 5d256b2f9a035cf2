{#- Typed values of one city-keyed source: the variable ingest read the header as (the
    yearbook_headers seed merged with the user's mappings, warehouse/mappings.py), the value
    converted to the variable's canonical unit (int_unit_conversions), the city name resolved
    through the aliases (int_city_names_resolved). Cells come from the loads in force
    (int_city_cells_current). -#}
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
inner join (select distinct source, variable, canonical_unit from {{ ref('yearbook_headers') }}) as headers
    on headers.source = cells.source and headers.variable = cells.variable
left join {{ ref('int_unit_conversions') }} as units
    on units.unit = coalesce(cells.header_unit, headers.canonical_unit)
    and units.canonical_unit = headers.canonical_unit
left join {{ ref('int_city_names_resolved') }} as names
    on names.source = cells.source
    and names.city_key = cells.city_key
    and names.province_text is not distinct from cells.province_text
    and names.year is not distinct from cells.year
where cells.source = '{{ source_name }}'
{% endmacro %}
