-- One row per decision about a delivered file, as ingest recorded it: loaded, failed (refused at
-- ingest), refused (its refresh was refused by the gate) or withdrawn (out of force).
select
    load_id,
    source,
    file_name,
    sha256,
    bytes,
    encoding,
    year,
    years,
    rows,
    status,
    error,
    note,
    config_fingerprint,
    archived_path,
    loaded_at
from {{ source('raw', 'load_manifest') }}
