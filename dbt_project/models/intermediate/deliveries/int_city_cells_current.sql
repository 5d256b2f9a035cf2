-- City rows of the city-keyed tables, from the loads in force only; of a two-level header only
-- the scope the delivery profile chose (column_kind value, not other_scope or ignored).
select
    cells.load_id,
    cells.source,
    cells.file_name,
    cells.source_row,
    cells.source_col,
    cells.year,
    cells.city_name_text,
    cells.city_key,
    cells.province_text,
    cells.header_text,
    cells.variable,
    cells.header_unit,
    cells.scope,
    cells.value_text,
    cells.value_number,
    cells.is_missing,
    cells.is_unparsed
from {{ ref('stg_raw__city_cells') }} as cells
inner join {{ ref('int_current_files') }} as files using (source, file_name, load_id)
where cells.row_kind = 'city' and cells.column_kind = 'value'
