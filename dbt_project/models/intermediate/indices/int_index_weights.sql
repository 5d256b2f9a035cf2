-- Entropy weights per index, scope and indicator (macro entropy_weights).
{{ entropy_weights(ref('int_index_normalised')) }}
