-- The unit conversions in force: the seed unit_conversions, and the user's
-- ($CITYRES_HOME/mappings/units.csv), which win for the same unit and canonical unit.
with merged as (
    select unit, canonical_unit, factor, 'seed unit_conversions' as origin, 1 as priority
    from {{ ref('unit_conversions') }}
    union all
    select unit, canonical_unit, factor, origin, 0 as priority
    from {{ ref('stg_raw__mapping_units') }}
)

select unit, canonical_unit, factor, origin
from merged
qualify row_number() over (partition by unit, canonical_unit order by priority) = 1
