"""Every threshold of the data-quality suites, in one place (documented in docs/data-quality.md).

Change a number here, not in the suites. Units are the canonical units of the yearbook_headers
and national_indicators seeds (the staging layer converts every delivered unit to them).
"""
from __future__ import annotations

CRITICAL, WARNING = "critical", "warning"

# ---------------------------------------------------------------- raw suite (per source and load)

# Variables every delivered file of a source must carry after header mapping (seed
# yearbook_headers / national_indicators). "all": every one of them; "any": at least one
# (the historical folder holds one single-variable table per file). Variables the seeds map
# but that are not listed here (e.g. extra yearbook columns) are optional.
REQUIRED_VARIABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "city_yearbook": ("all", (
        "pop_total", "pop_urban", "land_area", "gdp", "va_secondary", "va_tertiary",
        "trade_total", "fdi", "unemp_insured", "savings", "retail_sales", "fiscal_revenue",
        "fiscal_expenditure", "edu_expenditure", "sci_expenditure", "deposits", "loans",
        "hospital_beds", "college_students", "road_area", "avg_wage", "emp_total", "emp_it",
        "emp_research",
    )),
    "patents": ("all", (
        "patents_granted", "invention_patents_granted", "green_patent_applications",
        "digital_patent_applications",
    )),
    "historical": ("any", ("telephones_per_100_1984", "urban_resident_pop_2014")),
    "digital_finance": ("all", ("digital_finance",)),
    "national": ("all", ("national_gdp_per_capita", "internet_users", "usd_cny", "cpi_index")),
}

# Plausible range of each variable in its canonical unit: (low, high), inclusive. Wide enough
# for every Chinese prefecture-level city 2000-2030 (Shanghai's GDP is ~5e8 万元, Chongqing's
# registered population ~3,400 万人), narrow enough that a unit slip of 10^4 (亿元 printed as
# 万元, 人 as 万人) or a shifted column lands outside. A variable without an entry is not
# range-checked.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    # city_yearbook
    "pop_total": (5, 4_000),                    # 万人
    "pop_urban": (1, 4_000),                    # 万人
    "land_area": (50, 500_000),                 # km² (Nagqu ~450,000)
    "gdp": (1e5, 2e9),                          # 万元 (10 亿元 … 20 万亿元)
    "va_secondary": (1e4, 1e9),                 # 万元
    "va_tertiary": (1e4, 1.5e9),                # 万元
    "trade_total": (0, 5e8),                    # 万美元
    "fdi": (0, 5e7),                            # 万美元
    "unemp_insured": (1_000, 3e7),              # 人
    "savings": (1e4, 1.5e9),                    # 万元
    "retail_sales": (1e4, 1.5e9),               # 万元
    "fiscal_revenue": (1e3, 5e8),               # 万元
    "fiscal_expenditure": (1e4, 5e8),           # 万元
    "edu_expenditure": (1e3, 1e8),              # 万元
    "sci_expenditure": (0, 5e7),                # 万元
    "deposits": (1e5, 2e10),                    # 万元
    "loans": (1e5, 2e10),                       # 万元
    "hospital_beds": (100, 5e5),                # 张
    "college_students": (0, 3e6),               # 人
    "road_area": (1, 1e5),                      # 万m²
    "avg_wage": (1e4, 5e5),                     # 元
    "emp_total": (0.5, 2_000),                  # 万人
    "emp_it": (0, 300),                         # 万人
    "emp_research": (0, 300),                   # 万人
    # patents (counts)
    "patents_granted": (0, 1e6),
    "invention_patents_granted": (0, 5e5),
    "green_patent_applications": (0, 5e5),
    "digital_patent_applications": (0, 1e6),
    # historical
    "telephones_per_100_1984": (0, 50),         # lines per 100 inhabitants
    "urban_resident_pop_2014": (1, 3_000),      # 万人
    # national
    "national_gdp_per_capita": (1e3, 5e5),      # 元
    "internet_users": (1e3, 2e5),               # 万人
    "usd_cny": (1, 20),                         # 元/美元
    "cpi_index": (80, 130),                     # previous year = 100
    "digital_finance": (1, 1_000),              # index points (the Peking University index: ~20-400)
}

# Rows of a file (cities) relative to the cities of the reference seed that exist in the file's
# year (historical tables: today's cities): (low, high). Real yearbooks omit a few cities
# (Sansha), so the band starts below 1; more rows than cities means duplicates or stray rows.
# For enterprises the ratio is the share of existing cities with at least one registration.
ROW_COUNT_BANDS: dict[str, tuple[float, float]] = {
    "city_yearbook": (0.95, 1.0),
    "patents": (0.95, 1.0),
    "historical": (0.90, 1.0),
    "enterprises": (0.90, 1.0),
    "digital_finance": (0.90, 1.0),
}

# ---------------------------------------------------------------- marts suite

# Share of the panel's city-years with a value, per indicator and year (after interpolation of
# interior gaps). Below it the year's index would rest on too few cities.
COVERAGE_MIN = 0.95
# Indices whose inputs (intermediate.int_index_inputs) are coverage-checked, and the
# analysis_panel columns (controls) checked the same way.
COVERAGE_INDICES = ("resilience",)
COVERAGE_COLUMNS = ("eocden", "traff", "gove", "inv", "salary")

# Ratio indicators of int_city_year_panel that must lie in a range: (low, high, severity).
# Critical where the numerator is part of the denominator by definition; warning where a value
# outside is possible but suspicious. urbanisation_rate allows 1 %: pop_urban and pop_total are
# interpolated separately, which can push a fully urban city slightly above 1 (Shenzhen 2015 in
# the sample: 1.0027).
RATIO_BOUNDS: dict[str, tuple[float, float, str]] = {
    "edu_sci_expenditure_share": (0.0, 1.0, CRITICAL),
    "tech_talent_share": (0.0, 1.0, CRITICAL),
    "consumption_capacity": (0.0, 1.0, CRITICAL),
    "urbanisation_rate": (0.0, 1.01, CRITICAL),
    "fiscal_self_sufficiency": (0.0, 1.0, WARNING),
    "gove": (0.0, 1.0, WARNING),
}

# Index marts and the columns that must lie in [0, 1] (the index and its dimension scores).
INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "resilience_index": ("res", "resistance_recovery", "adaptability_adjustment",
                         "innovation_transformation"),
}

# Entropy weights sum to 1 within an index (and scope and year, where the mart has them).
WEIGHT_TOLERANCE = 1e-12

# Year-on-year jumps of a city's variable: |ln(x_t / x_{t-1})| above the threshold is listed
# (warning). 1.0 ≈ a factor 2.7 either way; FDI actually used is lumpy (one large project), so
# it gets more room.
JUMP_THRESHOLD = 1.0
JUMP_THRESHOLD_BY_VARIABLE: dict[str, float] = {"fdi": 1.5}

# A unit switch: a variable that jumps by a power of ten (|Δ log10| within UNIT_SWITCH_SLACK of
# a whole number >= 1) for more than UNIT_SWITCH_SHARE of the cities between two years is a
# delivery in another unit (e.g. 户 instead of 万户), not news: critical, it blocks publishing.
UNIT_SWITCH_SHARE = 0.5
UNIT_SWITCH_SLACK = 0.25

# Revisions of every published index against the published vintage: the mean relative change
# of its city-year values (warning above the threshold). A new year re-estimates the entropy
# weights and moves every value a little; a load that moves one index by more deserves a look.
INDEX_SCORE_COLUMNS = {"resilience_index": "res", "nqp_index": "nqp", "nqp_hierarchical_index": "nqp_h"}
REVISION_MEAN_RELATIVE = 0.05

# Distribution drift of each index indicator against the previously published vintage:
# two-sample Kolmogorov-Smirnov statistic (warning above the threshold).
KS_THRESHOLD = 0.05

# ---------------------------------------------------------------- reporting

EXAMPLES_STORED = 20        # example rows kept per failed expectation (validation_results, JSON)
EXAMPLES_IN_REPORT = 5      # example rows shown per failed expectation in the report
REVISION_TOLERANCE = 1e-12  # a published index value counts as revised above this |Δ|
GX_DOCS_KEEP = 10           # loads whose GX Data Docs are kept under reports/<vintage>/gx/
