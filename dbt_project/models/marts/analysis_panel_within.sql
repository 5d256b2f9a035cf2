-- The two-way within transformation (city and year fixed effects removed) of the analysis
-- variables, computed in SQL (macro two_way_within): the building block of every TWFE
-- regression on the panel. Rows with a NULL in any listed variable are left out.
{{ two_way_within(ref('analysis_panel'), 'city_code', 'year', [
    'res', 'nqp', 'nqp_h', 'sensitivity', 'did',
    'eocden', 'traff', 'gove', 'inv', 'salary',
    'ln_gdp_per_capita', 'industrial_structure', 'consumption_ratio', 'loans_to_gdp',
    'tech_talent_share', 'log_new_digital_firms', 'log_digital_patent_applications',
    'log_green_patent_applications'
]) }}
