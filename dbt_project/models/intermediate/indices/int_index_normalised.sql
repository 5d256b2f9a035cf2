-- Min-max normalised indicator values of every index (whole-panel bounds, direction-aware).
{{ normalise_indicators(ref('int_index_inputs')) }}
