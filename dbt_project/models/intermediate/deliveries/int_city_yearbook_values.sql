-- Typed, unit-normalised, name-resolved values of the city_yearbook files.
{{ city_table_values('city_yearbook') }}
