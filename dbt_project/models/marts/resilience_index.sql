-- The urban economic resilience index (RES, the resilience study's Table 1): entropy-weighted
-- sum of the 14 normalised indicators, its three dimension scores (they add up to res), and
-- the city's rank within the year (1 = most resilient).
{{ index_mart('resilience', 'res', 'dimension',
              ['resistance_recovery', 'adaptability_adjustment', 'innovation_transformation']) }}
