-- Columns of the loads in force that a mapping marks `ignore`: stored in raw, never used. An
-- unmapped header never gets here - ingest refuses its file.
select distinct cells.source, cells.file_name, cells.source_col, cells.header_text
from {{ ref('stg_raw__city_cells') }} as cells
inner join {{ ref('int_current_files') }} as files using (source, file_name, load_id)
where cells.column_kind = 'ignored'
