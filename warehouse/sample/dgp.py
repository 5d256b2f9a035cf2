"""The latent data-generating process: complete, unrounded city x year data, with and without the policy.

Every random number is drawn once, before the policy is applied, and the factual data are a
deterministic transformation of the counterfactual data and the exposure tau.  That is
what "common random numbers" means here: factual minus counterfactual is the policy and
nothing else.  docs/sample-data.md lists the formulas and parameter values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from warehouse.sample import dgp_nqp, national
from warehouse.sample.cities import (
    JINAN,
    LAIWU,
    LAIWU_LAST_YEAR,
    SIZE_TIERS,
    CityTable,
    size_tier,
)
from warehouse.sample.policy import PolicyDesign

BASE_YEAR = 2011
TIER_YEAR = 2014

# Latent variables in the units the yearbook prints them in.
VARIABLES = (
    "pop_total", "pop_urban", "land_area", "gdp", "va_primary", "va_secondary", "va_tertiary",
    "trade_total", "fdi", "unemp_insured", "savings", "retail_sales", "fiscal_revenue",
    "fiscal_expenditure", "edu_expenditure", "sci_expenditure", "deposits", "loans",
    "hospital_beds", "college_students", "road_area", "avg_wage", "emp_total", "emp_it",
    "emp_research", "patents_granted", "invention_patents_granted", "green_patent_applications",
    "digital_economy_patent_applications", "college_teachers", "so2_industrial", "electricity_use",
    "wastewater_treatment_rate", "broadband_users", "mobile_users", "telecom_volume", "digital_finance",
)  # fmt: skip
# Averages and rates, not totals: they do not add up across a boundary change or in a province
# subtotal. Each maps to the variable that weights it when two cities are put together.
NON_ADDITIVE = {"avg_wage": "emp_total", **dgp_nqp.NON_ADDITIVE}

# Long-run (tau = 1) policy effects.  Log-scale unless noted.  None of them touches GDP,
# population, land, roads, total fiscal expenditure, FDI or wages: those build the
# regression controls, and a control that responds to treatment biases the DID.
POLICY_EFFECTS = {
    "tech_talent": 0.30,  # emp_it and emp_research x (1 + 0.30 tau), emp_total fixed
    "digital_firms": 0.45,  # expected new digital registrations x exp(0.45 tau)
    "patents_granted": 0.30,
    "invention_patents_granted": 0.35,
    "digital_economy_patent_applications": 0.50,
    "secondary_to_tertiary": 0.06,  # share of secondary value added moved to tertiary (level)
    "college_students": 0.12,
    "unemp_insured": 0.12,
    "deposits_loans": 0.10,
    "sci_expenditure": 0.35,  # inside an unchanged total expenditure
    "green_patent_applications": 0.25,  # the NQP study's mediator (see GREEN_TO_INVENTION)
}
# The mediator path of the NQP study's Table 5: a share of green patent applications becomes granted
# invention patents (an NQP indicator), invention grants = share x patents + GREEN_TO_INVENTION x green,
# in every city-year; so the pilot zones raise NQP also through green innovation, by an amount the
# ground truth computes exactly (warehouse/sample/nqp_truth.py).
GREEN_TO_INVENTION = 0.5


@dataclass(frozen=True)
class Anchor:
    """Stylised targets for well-known cities, so the right tail has the right names in it.

    They are rough magnitudes for plausibility, not data: every one gets noise.
    """

    prominence: float
    pop: float  # registered population 2011, 万人
    pop_growth: float  # annual log growth of registered population
    gdppc: float  # GDP per registered person 2011, 元
    core: float  # urban-core resident population 2014, 万人
    land: float | None = None  # km2
    tertiary: float | None = None  # tertiary share of GDP 2011
    urban: float | None = None  # urbanisation rate 2011
    bumps: dict[str, float] = field(default_factory=dict)  # log shifts of single ratios


ANCHORS: dict[str, Anchor] = {
    "110000": Anchor(2.3, 1280, 0.008, 125000, 1850, 16410, 0.76, 0.86,
                     {"insur": 0.7, "finance": 0.5, "emp": 0.55, "it": 1.1, "research": 1.0, "college": 0.2}),
    "310000": Anchor(2.3, 1420, 0.004, 135000, 2100, 6340, 0.58, 0.89,
                     {"finance": 0.3, "emp": 0.1, "it": 0.6, "research": 0.5}),
    "120000": Anchor(1.5, 1000, 0.008, 113000, 1050, 11920, 0.46, 0.80),
    "500000": Anchor(1.0, 3300, 0.002, 30000, 1150, 82400, 0.37, 0.55),
    "440100": Anchor(2.0, 815, 0.022, 132000, 1120, 7434, 0.62, 0.85,
                     {"college": 0.4, "insur": 0.3, "trade": 0.2}),
    "440300": Anchor(2.5, 268, 0.065, 380000, 1080, 1997, 0.54, 1.0,
                     {"trade": 0.9, "insur": 1.7, "emp": 1.6, "patents": 1.2, "it": 0.5, "sci": 0.4}),
    "510100": Anchor(1.4, 1165, 0.020, 58000, 1010, 14335, 0.50, 0.66, {"college": 0.3}),
    "420100": Anchor(1.5, 830, 0.010, 82000, 850, 8569, 0.49, 0.78, {"college": 0.6}),
    "330100": Anchor(1.7, 700, 0.012, 100000, 620, 16850, 0.50, 0.72, {"it": 0.6}),
    "320100": Anchor(1.7, 640, 0.010, 95000, 650, 6587, 0.52, 0.80, {"college": 0.5}),
    "320500": Anchor(1.7, 640, 0.012, 165000, 520, 8657, 0.43, 0.72, {"trade": 0.8, "insur": 0.4}),
    "610100": Anchor(1.3, 800, 0.012, 48000, 630, 10108, 0.52, 0.70, {"college": 0.6}),
    "210100": Anchor(1.1, 720, 0.004, 80000, 620, 12860),
    "230100": Anchor(0.9, 990, 0.000, 42000, 560, 53100),
    "410100": Anchor(1.2, 760, 0.015, 65000, 600, 7446, None, None, {"college": 0.3}),
    "370100": Anchor(1.2, 610, 0.006, 72000, 510, 8177),
    "370200": Anchor(1.3, 770, 0.006, 86000, 520, 11282, None, None, {"trade": 0.3}),
    "430100": Anchor(1.2, 660, 0.015, 85000, 510, 11819),
    "441900": Anchor(1.5, 188, 0.040, 250000, 820, 2460, 0.51, 0.88, {"trade": 1.2, "insur": 1.9, "emp": 1.3}),
    "440600": Anchor(1.3, 380, 0.025, 160000, 560, 3798, None, None, {"insur": 0.4}),
    "350200": Anchor(1.4, 185, 0.040, 140000, 380, 1700, None, None, {"trade": 0.8, "insur": 0.9}),
    "440400": Anchor(1.3, 106, 0.050, 130000, 150, 1736, None, None, {"trade": 0.7, "insur": 0.9}),
    "330200": Anchor(1.4, 577, 0.010, 105000, 330, 9816, None, None, {"trade": 0.5}),
    "320200": Anchor(1.4, 470, 0.006, 145000, 330, 4627, None, None, {"trade": 0.3}),
    "210200": Anchor(1.2, 590, 0.004, 110000, 400, 12574),
    "530100": Anchor(1.0, 540, 0.010, 47000, 430, 21473),
    "340100": Anchor(1.2, 710, 0.012, 52000, 380, 11445, None, None, {"college": 0.3}),
    "220100": Anchor(0.9, 760, 0.002, 53000, 430, 20604),
    "650200": Anchor(0.8, 29, 0.010, 250000, 30, 7735),
    "150600": Anchor(0.8, 150, 0.010, 230000, 65, 86752),
    "442000": Anchor(1.1, 150, 0.020, 140000, 180, 1784, None, None, {"trade": 0.2, "insur": 0.9}),
    "371200": Anchor(0.3, 130, 0.003, 50000, 70, 2246),
}  # fmt: skip

# Names of the per-city standard-normal draws; their order fixes the random stream.
_CITY_DRAWS = (
    "prominence", "pop", "pop_growth", "gdppc", "gdp_trend", "core", "land", "urban", "primary",
    "tertiary", "trade", "trade_trend", "fdi", "insur", "savings", "savings_trend", "retail",
    "revenue", "expenditure", "edu", "sci", "finance", "deposit_share", "beds", "college",
    "road", "wage", "wage_trend", "emp", "it", "research", "patents", "patents_trend",
    "invention", "green", "digital_patents", "phones", "policy",
)  # fmt: skip


@dataclass
class Latent:
    years: np.ndarray
    factual: dict[str, np.ndarray]  # published geography (Laiwu inside Jinan after 2018)
    counterfactual: dict[str, np.ndarray]
    published: np.ndarray  # (city, year) has a row in that year's files
    core2014: np.ndarray
    phones1984: np.ndarray
    tier: np.ndarray
    heterogeneity: np.ndarray
    tau: np.ndarray  # exposure on the pre-merge geography
    prominence: np.ndarray
    # the factual data of a variable with one mediator held at its no-policy level (published
    # geography): {"green_patents": {"invention_patents_granted": ...}, "digital_finance": {...}}
    mediator_held: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) shocks along the year axis."""
    z = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = sd * z[:, 0]
    innov = np.sqrt(1.0 - rho**2) * sd
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + innov * z[:, t]
    return out


def _anchor(codes: np.ndarray, attr: str, default: np.ndarray) -> np.ndarray:
    out = default.copy()
    for i, c in enumerate(codes):
        a = ANCHORS.get(c)
        if a is not None and getattr(a, attr) is not None:
            out[i] = getattr(a, attr)
    return out


def _bump(codes: np.ndarray, key: str) -> np.ndarray:
    return np.array([ANCHORS[c].bumps.get(key, 0.0) if c in ANCHORS else 0.0 for c in codes])


def _catch_up(level0: np.ndarray, beta: float, lo: float = 0.2, hi: float = 1.8) -> np.ndarray:
    """Multiplier of the common growth rate: cities far above the median grow more slowly.

    Treated cities are richer than the rest on average; with equal percentage growth their
    levels, and so their index, would drift away from the controls before 2016, and a level
    DID would pick that up.  Catch-up growth keeps the expected level increments close to
    parallel (and is what Chinese city data show anyway).
    """
    return np.clip(1.0 - beta * np.log(level0 / np.median(level0)), lo, hi)


def _away_from_tier_bounds(core: np.ndarray) -> np.ndarray:
    # Printed with 2 decimals: keep every city clearly on one side of a tier boundary.
    out = core.copy()
    for _name, _zh, low, _high in SIZE_TIERS:
        if low > 0:
            near = np.abs(out - low) < 0.5
            out[near] = low + np.where(out[near] >= low, 0.5, -0.5)
    return out


def _counterfactual(cities: CityTable, years: np.ndarray, city_rng: np.random.Generator,
                    time_rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    n, T = cities.n, len(years)
    Z = dict(zip(_CITY_DRAWS, city_rng.standard_normal((len(_CITY_DRAWS), n))))
    k = (years - BASE_YEAR).astype(float)[None, :]
    shape = (n, T)
    codes = cities.code
    anchored = np.array([c in ANCHORS for c in codes])
    muni = cities.admin_level == "municipality"
    subprov = cities.admin_level == "sub_provincial"
    east, west = cities.region == "east", cities.region == "west"
    central, northeast = cities.region == "central", cities.region == "northeast"
    far_west = cities.lon < 100.0
    inner_mongolia = cities.province_code == "150000"
    res = cities.resource.astype(float)

    # Prominence: one latent factor behind income, openness, innovation and finance.
    P = (0.75 * muni + 0.55 * subprov + 0.45 * cities.is_capital + 0.25 * cities.key_city + 0.30 * east
         + 0.15 * cities.coastal - 0.10 * northeast - 0.20 * west - 0.25 * far_west - 0.10 * res
         + 0.30 * Z["prominence"])
    P = np.where(anchored, _anchor(codes, "prominence", P) + 0.08 * Z["prominence"], P)

    # GDP per registered person in the base year.
    lny0 = np.log(26000.0) + 0.60 * P + 0.35 * res * (cities.lat > 35) + 0.28 * Z["gdppc"]
    y0 = np.where(anchored, _anchor(codes, "gdppc", np.exp(lny0)) * np.exp(0.05 * Z["gdppc"]), np.exp(lny0))

    # Registered population.  Rich cities gain registered residents (hukou reform), poor ones
    # lose them, so per-capita income converges although GDP grows at a common rate.
    lnpop = (np.log(300.0) + 0.5 * cities.is_capital + 0.2 * cities.key_city - 0.3 * west - 0.9 * far_west
             - 0.1 * northeast + 0.15 * central + 0.45 * Z["pop"])
    pop0 = np.clip(np.exp(lnpop), 15.0, 1500.0)
    pop0 = np.where(anchored, _anchor(codes, "pop", pop0) * np.exp(0.02 * Z["pop"]), pop0)
    gpop = np.clip(0.002 + 0.010 * np.log(y0 / np.median(y0)) + 0.003 * Z["pop_growth"], -0.01, 0.03)
    gpop = np.where(anchored, _anchor(codes, "pop_growth", gpop) + 0.002 * Z["pop_growth"], gpop)
    pop = np.minimum(pop0[:, None] * np.exp(gpop[:, None] * k + _ar1(time_rng, shape, 0.8, 0.004)), 3400.0)

    # GDP grows at the national nominal rate in logs, plus a random city trend and AR(1)
    # noise.  Nothing here is related to treatment, so ln(GDP/land), a regression control,
    # carries no differential trend between treated and untreated cities.
    nat = national.series(years)
    G = np.log(nat["gdp_per_capita"] / national.series(np.array([BASE_YEAR]))["gdp_per_capita"][0])[None, :]
    gdp = (pop0 * y0)[:, None] * np.exp(G + 0.005 * k + 0.010 * Z["gdp_trend"][:, None] * k
                                        + _ar1(time_rng, shape, 0.6, 0.025))

    # Structure: the primary share shrinks, and 3 % of the secondary share moves to tertiary each year.
    s1_0 = np.clip(0.13 * np.exp(-0.8 * P + 0.35 * Z["primary"]), 0.001, 0.38)
    s3_0 = np.clip(0.36 + 0.07 * P + 0.04 * cities.is_capital - 0.05 * res + 0.05 * Z["tertiary"], 0.2, 0.8)
    s3_0 = np.where(anchored, _anchor(codes, "tertiary", s3_0), s3_0)
    s3_0 = np.minimum(s3_0, 0.92 - s1_0)
    s1 = s1_0[:, None] * np.exp(-0.03 * k + _ar1(time_rng, shape, 0.6, 0.03))
    s2_0 = 1.0 - s1_0 - s3_0
    s3 = s3_0[:, None] + s2_0[:, None] * (1.0 - np.exp(-0.03 * k)) + _ar1(time_rng, shape, 0.6, 0.006)
    s3 = np.clip(s3, 0.15, 0.95 - s1)
    s2 = 1.0 - s1 - s3

    urb0 = np.clip(0.35 + 0.12 * P + 0.10 * Z["urban"], 0.15, 0.98)
    urb0 = np.where(anchored, _anchor(codes, "urban", urb0), urb0)
    urb = urb0[:, None] + (1.0 - urb0[:, None]) * (1.0 - np.exp(-0.035 * k)) + _ar1(time_rng, shape, 0.6, 0.005)
    urb = np.clip(urb, 0.12, 1.0)

    lnland = (np.log(11000.0) + 0.5 * west + 1.0 * far_west + 0.4 * northeast - 0.35 * east + 0.6 * inner_mongolia
              + 0.5 * Z["land"])
    land = np.clip(np.exp(lnland), 1000.0, 400000.0)
    land = np.where(anchored, _anchor(codes, "land", land), land)

    fx = nat["usd_cny"][None, :]
    td0 = np.exp(np.log(0.06) + 0.75 * P + 0.9 * cities.coastal + 0.85 * Z["trade"] + _bump(codes, "trade"))
    td = np.minimum(td0, 2.5)[:, None] * np.exp(0.012 * Z["trade_trend"][:, None] * k
                                                 + _ar1(time_rng, shape, 0.7, 0.08))
    trade = td * gdp / fx

    fr0 = np.exp(np.log(0.012) + 0.35 * P + 0.3 * cities.coastal + 0.8 * Z["fdi"])
    fdi = fr0[:, None] * np.exp(-0.04 * k + _ar1(time_rng, shape, 0.5, 0.3)) * gdp / fx
    fdi = np.maximum(fdi, 5.0)

    cov0 = np.exp(np.log(0.055) + 0.85 * P + 0.35 * Z["insur"] + _bump(codes, "insur"))
    insured = cov0[:, None] * np.exp(0.025 * _catch_up(cov0, 0.5)[:, None] * k
                                     + _ar1(time_rng, shape, 0.7, 0.04)) * pop * 1e4
    # Real magnitudes: migrants make the insured outnumber the registered population in a few
    # cities, but not by more than about 2.5 times (Shenzhen: ~14.6 million insured, ~6 million
    # hukou residents; no city above ~15 million); uncapped, some seeds drew 6-7 times and over
    # 30 million, above what any yearbook prints.
    insured = np.minimum(insured, np.minimum(2.6 * pop * 1e4, 1.8e7))

    spc0 = np.exp(np.log(19000.0) + 0.75 * P + 0.3 * Z["savings"])
    savings = spc0[:, None] * np.exp(0.085 * _catch_up(spc0, 0.4)[:, None] * k
                                     + 0.01 * Z["savings_trend"][:, None] * k
                                     + _ar1(time_rng, shape, 0.7, 0.03)) * pop

    retail_ratio = np.clip(0.36 + 0.03 * P + 0.07 * Z["retail"], 0.12, 0.75)[:, None] + 0.004 * k
    retail = np.clip(retail_ratio + _ar1(time_rng, shape, 0.6, 0.015), 0.1, 0.85) * gdp

    rev_ratio = np.clip(0.052 + 0.014 * P + 0.018 * Z["revenue"], 0.02, 0.2)[:, None] - 0.0005 * k
    revenue = np.clip(rev_ratio + _ar1(time_rng, shape, 0.5, 0.004), 0.012, 0.25) * gdp
    exp_ratio = np.clip(0.15 * np.exp(0.35 * west + 0.7 * far_west + 0.2 * northeast - 0.15 * P
                                      + 0.3 * Z["expenditure"]), 0.05, 1.6)
    expenditure = exp_ratio[:, None] * np.exp(_ar1(time_rng, shape, 0.6, 0.03)) * gdp
    # Local revenue rarely covers all spending.
    expenditure = np.maximum(expenditure, 1.1 * revenue)
    edu_share = np.clip(0.17 + 0.025 * Z["edu"], 0.09, 0.26)[:, None] + _ar1(time_rng, shape, 0.5, 0.006)
    sci_share = np.exp(np.log(0.010) + 0.55 * P + 0.4 * Z["sci"] + _bump(codes, "sci"))[:, None]
    sci_share = np.minimum(sci_share * np.exp(0.02 * k + _ar1(time_rng, shape, 0.5, 0.08)), 0.12)
    edu = edu_share * expenditure
    sci = sci_share * expenditure

    fin = np.exp(np.log(2.0) + 0.30 * P + 0.25 * Z["finance"] + _bump(codes, "finance"))
    fin = fin[:, None] * np.exp(0.03 * _catch_up(fin, 0.5)[:, None] * k + _ar1(time_rng, shape, 0.7, 0.03)) * gdp
    dshare = np.clip(0.58 + 0.05 * Z["deposit_share"], 0.45, 0.72)[:, None]
    deposits, loans = dshare * fin, (1.0 - dshare) * fin

    beds_pc = np.clip(35.0 + 7.0 * P + 7.0 * Z["beds"], 12.0, 110.0)[:, None] + 1.6 * k
    beds = np.maximum(beds_pc + _ar1(time_rng, shape, 0.6, 1.0), 5.0) * pop

    col0 = np.exp(np.log(550.0) + 0.9 * P + 0.8 * cities.is_capital + 0.8 * Z["college"] + _bump(codes, "college"))
    col0 = np.clip(col0, 30.0, 13000.0)
    college = col0[:, None] * np.exp(0.015 * _catch_up(col0, 0.5)[:, None] * k
                                     + _ar1(time_rng, shape, 0.8, 0.02)) * pop / 10.0  # per 1e5 -> persons

    wage0 = np.exp(np.log(36000.0) + 0.20 * P + 0.08 * Z["wage"])
    wage = wage0[:, None] * np.exp(0.078 * k + 0.004 * Z["wage_trend"][:, None] * k + _ar1(time_rng, shape, 0.6, 0.015))

    emp_ratio = np.exp(np.log(0.10) + 0.45 * P + 0.25 * Z["emp"] + _bump(codes, "emp"))
    emp = emp_ratio[:, None] * np.exp(0.01 * k + _ar1(time_rng, shape, 0.6, 0.02)) * pop
    it_share = np.exp(np.log(0.010) + 0.45 * P + 0.30 * Z["it"] + _bump(codes, "it"))[:, None]
    rs_share = np.exp(np.log(0.013) + 0.40 * P + 0.30 * Z["research"] + _bump(codes, "research"))[:, None]
    it_share = np.minimum(it_share * np.exp(0.02 * k + _ar1(time_rng, shape, 0.7, 0.03)), 0.2)
    rs_share = np.minimum(rs_share * np.exp(0.02 * k + _ar1(time_rng, shape, 0.7, 0.03)), 0.2)

    pat0 = np.exp(np.log(1.6) + 1.45 * P + 0.5 * Z["patents"] + _bump(codes, "patents"))
    # Patents scale with the base-year population only: a city whose registered population
    # balloons (Shenzhen) would otherwise drift away from everyone else in levels.
    patents = (pat0 * pop0)[:, None] * np.exp(0.06 * _catch_up(pat0 * pop0, 0.5)[:, None] * k
                                              + 0.01 * Z["patents_trend"][:, None] * k
                                              + _ar1(time_rng, shape, 0.5, 0.06))
    inv_share = np.clip(np.exp(np.log(0.12) + 0.25 * P + 0.2 * Z["invention"]), 0.03, 0.45)[:, None]
    inv_share = np.minimum(inv_share * np.exp(0.03 * k), 0.6)
    green = 0.12 * np.exp(0.25 * Z["green"])[:, None] * np.exp(_ar1(time_rng, shape, 0.5, 0.1)) * patents
    dig_share = np.exp(np.log(0.10) + 0.4 * P + 0.3 * Z["digital_patents"])[:, None]
    digital_patents = np.minimum(dig_share * np.exp(0.04 * k + _ar1(time_rng, shape, 0.5, 0.08)), 0.8) * patents

    # Urban-core residents 2014 (city-size tiers) and a road network that scales with them.
    i14 = int(np.clip(TIER_YEAR - years[0], 0, len(years) - 1))
    core_share = np.clip(np.exp(np.log(0.24) + 0.35 * P + 0.35 * Z["core"]), 0.04, 0.7)
    # Only the named anchors reach the two top tiers, as in the State Council list.
    core = np.clip(pop[:, i14] * core_share, 5.0, 480.0)
    core = np.where(anchored, _anchor(codes, "core", core) * np.exp(0.02 * Z["core"]), core)
    core = _away_from_tier_bounds(core)
    # No systematic growth: road density is a regression control, and a control whose trend
    # scales with city size soaks up the (size-dependent, growing) policy effect.
    road_pc = np.clip(13.0 * np.exp(0.2 * Z["road"]), 4.0, 35.0)[:, None] * np.exp(_ar1(time_rng, shape, 0.5, 0.03))
    road = core[:, None] * road_pc

    va1 = s1 * gdp
    cf = {
        "pop_total": pop, "pop_urban": urb * pop, "land_area": np.repeat(land[:, None], len(years), 1),
        "gdp": gdp, "va_primary": va1, "va_secondary": s2 * gdp, "va_tertiary": s3 * gdp,
        "trade_total": trade, "fdi": fdi, "unemp_insured": insured, "savings": savings,
        "retail_sales": retail, "fiscal_revenue": revenue, "fiscal_expenditure": expenditure,
        "edu_expenditure": edu, "sci_expenditure": sci, "deposits": deposits, "loans": loans,
        "hospital_beds": beds, "college_students": college, "road_area": road, "avg_wage": wage,
        # IT employment (urban units) stays below ~1/5 of the registered population (Beijing,
        # the largest: ~1.1 million of 14 million); uncapped, some seeds drew over half.
        "emp_total": emp, "emp_it": np.minimum(it_share * emp, 0.22 * pop), "emp_research": rs_share * emp,
        "patents_granted": patents, "invention_patents_granted": inv_share * patents + GREEN_TO_INVENTION * green,
        "green_patent_applications": green, "digital_economy_patent_applications": digital_patents,
    }  # fmt: skip
    extra = {"core2014": core, "phones_z": Z["phones"], "prominence": P, "policy_z": Z["policy"]}
    return cf, extra


# 1984 fixed telephones per 100 people: e^{ln 0.35 + 0.8 pilot + 0.35 z}. The study's instrument
# (telephones x the previous year's national internet users) is then relevant through adoption
# only: the telephones depend on which cities became pilots and on their own draw, on nothing
# that enters any outcome (prominence, size, region), so the exclusion restriction holds by
# construction. What the instrument cannot escape is the pilots' own counterfactual trend,
# which the DID faces too (docs/sample-data.md, "The telephone instrument").
PHONES_PILOT_SHIFT = 0.8


def telephones_1984(treated: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.clip(np.exp(np.log(0.35) + PHONES_PILOT_SHIFT * treated + 0.35 * z), 0.03, 8.0)


def apply_policy(cf: dict[str, np.ndarray], tau: np.ndarray) -> dict[str, np.ndarray]:
    """Factual data: a deterministic function of the counterfactual data and the exposure."""
    e = POLICY_EFFECTS
    f = dict(cf)
    talent = 1.0 + e["tech_talent"] * tau
    f["emp_it"] = cf["emp_it"] * talent
    f["emp_research"] = cf["emp_research"] * talent
    for var in ("patents_granted", "digital_economy_patent_applications", "college_students", "unemp_insured",
                "green_patent_applications"):
        f[var] = cf[var] * np.exp(e[var] * tau)
    # invention grants: their own effect on the share-of-patents part, and the green path
    own = cf["invention_patents_granted"] - GREEN_TO_INVENTION * cf["green_patent_applications"]
    f["invention_patents_granted"] = (own * np.exp(e["invention_patents_granted"] * tau)
                                      + GREEN_TO_INVENTION * f["green_patent_applications"])
    moved = e["secondary_to_tertiary"] * tau * cf["va_secondary"]
    f["va_secondary"] = cf["va_secondary"] - moved
    f["va_tertiary"] = cf["va_tertiary"] + moved
    fin = np.exp(e["deposits_loans"] * tau)
    f["deposits"], f["loans"] = cf["deposits"] * fin, cf["loans"] * fin
    # Total expenditure is a control and must not move: science spending crowds out "other" items.
    f["sci_expenditure"] = cf["sci_expenditure"] * np.exp(e["sci_expenditure"] * tau)
    return f


def merge_boundaries(data: dict[str, np.ndarray], cities: CityTable, years: np.ndarray) -> dict[str, np.ndarray]:
    """Put Laiwu inside Jinan from the first year after its abolition, as the yearbooks do."""
    out = {v: a.copy() for v, a in data.items()}
    j, lw = cities.idx[JINAN], cities.idx[LAIWU]
    after = years > LAIWU_LAST_YEAR
    if not after.any():
        return out
    for v, a in out.items():
        if v in NON_ADDITIVE:
            w_j, w_l = data[NON_ADDITIVE[v]][j, after], data[NON_ADDITIVE[v]][lw, after]
            a[j, after] = (data[v][j, after] * w_j + data[v][lw, after] * w_l) / (w_j + w_l)
        else:
            a[j, after] = data[v][j, after] + data[v][lw, after]
    for a in out.values():
        a[lw, after] = np.nan
    return out


def simulate(cities: CityTable, design: PolicyDesign, years: np.ndarray, city_rng: np.random.Generator,
             time_rng: np.random.Generator, nqp_rng: np.random.Generator) -> Latent:
    cf, extra = _counterfactual(cities, years, city_rng, time_rng)
    cf.update(dgp_nqp.counterfactual(cf, extra["prominence"], cities.resource, years, nqp_rng))
    tier = size_tier(extra["core2014"])
    h = design.heterogeneity(tier, extra["policy_z"])
    tau = design.exposure(years, h)
    f = dgp_nqp.apply_policy(apply_policy(cf, tau), tau)
    published = np.stack([cities.published(int(y)) for y in years], axis=1)
    green_gain = GREEN_TO_INVENTION * (f["green_patent_applications"] - cf["green_patent_applications"])
    finance_gain = np.exp(dgp_nqp.DIGITAL_FINANCE_TO_TELECOM * dgp_nqp.POLICY_EFFECTS["digital_finance"] * tau)
    held = {
        "green_patents": {"invention_patents_granted": f["invention_patents_granted"] - green_gain},
        "digital_finance": {"telecom_volume": f["telecom_volume"] / finance_gain},
    }
    mediator_held = {m: {v: merge_boundaries(dict(f, **h), cities, years)[v] for v in h} for m, h in held.items()}
    return Latent(
        years=years,
        factual=merge_boundaries(f, cities, years),
        counterfactual=merge_boundaries(cf, cities, years),
        published=published,
        core2014=extra["core2014"],
        phones1984=telephones_1984(design.treated, extra["phones_z"]),
        tier=tier,
        heterogeneity=h,
        tau=tau,
        prominence=extra["prominence"],
        mediator_held=mediator_held,
    )
