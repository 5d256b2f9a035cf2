-- New-quality productivity as the NQP → resilience study's Table 1 builds it: criterion layer
-- (labour force, objects of labour, means of labour) → primary → secondary indicators. Only
-- the indicators the sources supply enter (index_spec.available); index_scores has every level.
{{ index_mart('nqp_hierarchical', 'nqp_h', 'criterion',
              ['labour_force', 'objects_of_labour', 'means_of_labour']) }}
