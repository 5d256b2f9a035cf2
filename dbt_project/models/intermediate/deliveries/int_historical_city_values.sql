-- Typed, unit-normalised, name-resolved values of the historical files.
{{ city_table_values('historical') }}
