-- One row per attempt to load a delivered file, as ingest recorded it (status loaded or failed).
select
    load_id,
    source,
    file_name,
    sha256,
    bytes,
    encoding,
    year,
    rows,
    status,
    error,
    archived_path,
    loaded_at
from {{ source('raw', 'load_manifest') }}
