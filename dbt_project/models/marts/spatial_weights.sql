-- Spatial weights between the panel's cities, from the reference seed's city coordinates, in
-- long form: one row per scheme, city and neighbour with a non-zero weight. Two schemes:
--   inverse_distance: w_ij = 1 / d_ij^power for 0 < d_ij <= var spatial_cutoff_km,
--   knn:              w_ij = 1 for the var spatial_knn nearest cities (ties broken by city code),
-- each row-standardised (a city's weights sum to 1). d_ij is the great-circle (haversine) distance
-- between the coordinates, on a sphere of radius 6371.0088 km (the mean Earth radius, IUGG).
-- A city with no neighbour inside the cut-off would get a zero row, which a spatial model must not
-- see silently: the model's data test `every_city_has_neighbours` fails the load instead.
with cities as (
    select distinct spine.city_code, ref.lat, ref.lon
    from {{ ref('int_city_year_spine') }} as spine
    join {{ ref('stg_reference__cities') }} as ref using (city_code)
),

pairs as (
    select
        a.city_code,
        b.city_code as neighbour_code,
        2 * 6371.0088 * asin(sqrt(least(1.0,
            pow(sin(radians(b.lat - a.lat) / 2), 2)
            + cos(radians(a.lat)) * cos(radians(b.lat)) * pow(sin(radians(b.lon - a.lon) / 2), 2)
        ))) as distance_km
    from cities as a
    join cities as b on a.city_code <> b.city_code
),

inverse_distance as (
    select
        'inverse_distance' as scheme,
        city_code, neighbour_code, distance_km,
        pow(distance_km, -{{ var('spatial_idw_power') }}) as raw_weight,
        'cutoff_km={{ var("spatial_cutoff_km") }};power={{ var("spatial_idw_power") }}' as parameters
    from pairs
    where distance_km <= {{ var('spatial_cutoff_km') }}
),

knn as (
    select
        'knn' as scheme,
        city_code, neighbour_code, distance_km,
        1.0 as raw_weight,
        'k={{ var("spatial_knn") }}' as parameters
    from pairs
    qualify row_number() over (partition by city_code order by distance_km, neighbour_code) <= {{ var('spatial_knn') }}
),

both_schemes as (
    select * from inverse_distance
    union all
    select * from knn
)

select
    scheme,
    city_code,
    neighbour_code,
    distance_km,
    raw_weight,
    raw_weight / sum(raw_weight) over (partition by scheme, city_code) as weight,
    parameters,
    '{{ vintage() }}' as vintage
from both_schemes
