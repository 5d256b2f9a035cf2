"""New-firm registrations: counts per city-year (factual and counterfactual) and the record files."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.sample.cities import CityTable
from warehouse.sample.dgp import POLICY_EFFECTS, Latent

# Registrations per year at firm_scale = 1 in the base year, and their annual growth.
BASE_REGISTRATIONS = 105_000
REGISTRATION_GROWTH = 0.075
HEADER = "企业ID,所在城市,成立日期,行业代码,注册资本(万元)"

# GB/T 4754-2017 classes.  Digital = section I, divisions 63 (telecom, broadcast and
# satellite transmission), 64 (internet and related services), 65 (software and IT services).
DIGITAL_CLASSES: tuple[tuple[str, float], ...] = (
    ("I6311", 1), ("I6312", 1), ("I6319", 1), ("I6321", 0.5), ("I6322", 0.3), ("I6331", 0.2), ("I6339", 0.2),
    ("I6410", 2), ("I6421", 1), ("I6422", 2), ("I6429", 4), ("I6431", 3), ("I6432", 4), ("I6433", 2),
    ("I6434", 1), ("I6439", 2), ("I6440", 1), ("I6450", 2), ("I6490", 3),
    ("I6511", 2), ("I6512", 2), ("I6513", 10), ("I6519", 4), ("I6520", 2), ("I6531", 6), ("I6532", 3),
    ("I6540", 3), ("I6550", 3), ("I6560", 8), ("I6571", 1), ("I6572", 2), ("I6579", 2), ("I6591", 1),
    ("I6599", 6),
)  # fmt: skip
OTHER_CLASSES: tuple[tuple[str, float], ...] = (
    ("A0111", 1), ("A0141", 2), ("A0311", 1), ("C1311", 1), ("C1711", 1), ("C2927", 2), ("C3311", 2),
    ("C3421", 1), ("C3670", 2), ("C3982", 2), ("E4710", 3), ("E5012", 5), ("F5181", 6), ("F5211", 6),
    ("F5212", 5), ("F5292", 10), ("G5431", 4), ("G6020", 2), ("H6110", 1), ("H6210", 6), ("H6220", 4),
    ("K7010", 2), ("K7020", 2), ("K7030", 3), ("L7211", 4), ("L7251", 3), ("M7320", 2), ("M7484", 2),
    ("M7519", 6), ("O8010", 3), ("O8111", 3), ("P8391", 3),
)  # fmt: skip
# Fewer registrations around the Spring Festival.
MONTH_WEIGHTS = np.array([0.75, 0.6, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 1.0, 1.1])


def is_digital_code(code: str) -> bool:
    return code[:1] == "I" and code[1:3] in {"63", "64", "65"}


@dataclass(frozen=True)
class FirmCounts:
    digital: np.ndarray  # factual, (city, year) on the published geography; what the files hold
    digital_counterfactual: np.ndarray
    other: np.ndarray


def counts(cities: CityTable, latent: Latent, rng: np.random.Generator, firm_scale: float) -> FirmCounts:
    """Registrations per published city-year, with common random numbers for the policy contrast."""
    years = latent.years
    n, T = latent.published.shape
    gdp = np.nan_to_num(latent.counterfactual["gdp"], nan=0.0)
    k = (years - years[0]).astype(float)[None, :]
    z_share, z_level = rng.standard_normal((2, n))
    eps = rng.standard_normal((2, n, T))
    u = rng.random((2, n, T))

    # Expected registrations: a national total split by economic size, 'start-up culture' (prominence).
    weight = np.where(latent.published, gdp**0.85 * np.exp(0.25 * latent.prominence + 0.2 * z_level)[:, None], 0.0)
    total = BASE_REGISTRATIONS * firm_scale * np.exp(REGISTRATION_GROWTH * k)
    lam = weight / weight.sum(axis=0, keepdims=True) * total
    share = np.clip(0.035 * np.exp(0.5 * latent.prominence + 0.3 * z_share)[:, None] * np.exp(0.03 * k), 0.005, 0.3)
    lam_digital = lam * share
    # Laiwu's exposure stops mattering once it is part of Jinan; Jinan keeps its own.
    tau = np.where(latent.published, latent.tau, 0.0)

    def draw(mean: np.ndarray, j: int) -> np.ndarray:
        # Stochastic rounding of a lognormally perturbed mean: the same eps and u for the
        # factual and counterfactual counts, so they differ only through the mean.
        x = np.floor(mean * np.exp(0.1 * eps[j] - 0.005) + u[j])
        return np.where(latent.published, np.maximum(x, 1), 0).astype(np.int64)

    return FirmCounts(
        digital=draw(lam_digital * np.exp(POLICY_EFFECTS["digital_firms"] * tau), 0),
        digital_counterfactual=draw(lam_digital, 0),
        other=draw(lam * (1.0 - share), 1),
    )


def registrations_csv(
    cities: CityTable, year: int, digital: np.ndarray, other: np.ndarray, rng: np.random.Generator
) -> str:
    """One year's firm records as CSV text (header included), sorted by date then firm id."""
    n_d, n_o = int(digital.sum()), int(other.sum())
    city = np.concatenate([np.repeat(np.arange(cities.n), digital), np.repeat(np.arange(cities.n), other)])
    d_codes = np.array([c for c, _ in DIGITAL_CLASSES])
    d_w = np.array([w for _, w in DIGITAL_CLASSES])
    o_codes = np.array([c for c, _ in OTHER_CLASSES])
    o_w = np.array([w for _, w in OTHER_CLASSES])
    industry = np.concatenate([
        d_codes[rng.choice(len(d_codes), n_d, p=d_w / d_w.sum())],
        o_codes[rng.choice(len(o_codes), n_o, p=o_w / o_w.sum())],
    ])  # fmt: skip
    capital = np.concatenate([rng.lognormal(np.log(100.0), 1.3, n_d), rng.lognormal(np.log(80.0), 1.4, n_o)])
    capital = np.maximum(np.round(capital, 2), 0.01)

    days = np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))
    months = days.astype("datetime64[M]").astype(int) % 12
    p_day = MONTH_WEIGHTS[months] / MONTH_WEIGHTS[months].sum()
    day = rng.choice(len(days), n_d + n_o, p=p_day)
    tiebreak = rng.random(n_d + n_o)

    # Per-city serial numbers in date order make ids unique and look like registry ids.
    order = np.lexsort((tiebreak, day, city))
    city, day, industry, capital = city[order], day[order], industry[order], capital[order]
    starts = np.flatnonzero(np.r_[True, city[1:] != city[:-1]])
    serial = np.arange(len(city)) - np.repeat(starts, np.diff(np.r_[starts, len(city)])) + 1
    final = np.lexsort((serial, city, day))

    prefix = [f"91{code}{year % 100:02d}" for code in cities.code]
    dates = [str(d) for d in days]
    names = list(cities.name_zh)
    lines = [HEADER]
    lines.extend(
        f"{prefix[c]}{s:07d}0,{names[c]},{dates[d]},{ind},{cap:.2f}"
        for c, s, d, ind, cap in zip(
            city[final].tolist(), serial[final].tolist(), day[final].tolist(),
            industry[final].tolist(), capital[final].tolist(),
        )
    )  # fmt: skip
    return "\n".join(lines) + "\n"
