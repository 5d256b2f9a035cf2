-- Headers of the loads in force that the yearbook_headers seed does not map: a renamed header
-- shows up here (a warning test), and mapping it is a one-line seed change.
select distinct cells.source, cells.header_text, cells.header_base, cells.file_name
from {{ ref('int_city_cells_current') }} as cells
left join {{ ref('yearbook_headers') }} as headers
    on headers.source = cells.source and headers.header_base = cells.header_base
where headers.variable is null
