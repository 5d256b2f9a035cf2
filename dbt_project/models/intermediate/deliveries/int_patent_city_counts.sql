-- Typed, unit-normalised, name-resolved values of the patents files.
{{ city_table_values('patents') }}
