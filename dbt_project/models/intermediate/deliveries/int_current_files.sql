-- The loads in force: for each delivered file name the most recent successful load, so a
-- re-delivered (corrected) file replaces its predecessor while the old rows stay in raw.
select source, file_name, load_id, sha256, loaded_at
from {{ ref('stg_raw__load_manifest') }}
where status = 'loaded'
qualify row_number() over (partition by source, file_name order by loaded_at desc, load_id desc) = 1
