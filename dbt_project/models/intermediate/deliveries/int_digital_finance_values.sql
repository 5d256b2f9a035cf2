-- Typed, unit-normalised, name-resolved values of the digital inclusive finance files (the
-- Peking University index's city table, or the sample's synthetic stand-in).
{{ city_table_values('digital_finance') }}
