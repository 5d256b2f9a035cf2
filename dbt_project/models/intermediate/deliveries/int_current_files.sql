-- The loads in force: for each delivered file path its latest load or withdrawal, when that is a
-- load. A re-delivered (corrected) file replaces its predecessor, a file taken out of the
-- landing folder is withdrawn (warehouse/deliveries.py), and the old rows stay in raw.
select source, file_name, load_id, sha256, loaded_at
from {{ ref('stg_raw__load_manifest') }}
where status in ('loaded', 'withdrawn')
qualify row_number() over (partition by source, file_name order by loaded_at desc, load_id desc) = 1
    and status = 'loaded'
