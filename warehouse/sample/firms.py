"""New-firm registrations: counts per city-year (factual and counterfactual) and the record files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.sample.cities import CityTable
from warehouse.sample.dgp import POLICY_EFFECTS, Latent

# Registrations per year at firm_scale = 1 in the base year, and their annual growth.
BASE_REGISTRATIONS = 105_000
REGISTRATION_GROWTH = 0.075
HEADER = "企业ID,所在城市,成立日期,行业代码,注册资本(万元)"
CHUNK_ROWS = 1_000_000  # records formatted and written at a time

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


def write_registrations(
    path: Path, cities: CityTable, year: int, digital: np.ndarray, other: np.ndarray, rng: np.random.Generator,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Write one year's firm records as CSV (header included), sorted by date then firm id; the
    number of records. The draws are made for the whole year (the order of the file depends on
    all of them); the text is formatted and written ``chunk_rows`` records at a time, so a file of
    gigabytes is never built in memory."""
    n_d, n_o = int(digital.sum()), int(other.sum())
    city = np.concatenate([np.repeat(np.arange(cities.n), digital), np.repeat(np.arange(cities.n), other)])
    d_w = np.array([w for _, w in DIGITAL_CLASSES])
    o_w = np.array([w for _, w in OTHER_CLASSES])
    # Indices into DIGITAL_CLASSES + OTHER_CLASSES: 2 bytes a record instead of a 5-character string.
    industry = np.concatenate([
        rng.choice(len(d_w), n_d, p=d_w / d_w.sum()),
        len(d_w) + rng.choice(len(o_w), n_o, p=o_w / o_w.sum()),
    ]).astype(np.int16)  # fmt: skip
    capital = np.concatenate([rng.lognormal(np.log(100.0), 1.3, n_d), rng.lognormal(np.log(80.0), 1.4, n_o)])
    capital = np.maximum(np.round(capital, 2), 0.01)

    days = np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))
    months = days.astype("datetime64[M]").astype(int) % 12
    p_day = MONTH_WEIGHTS[months] / MONTH_WEIGHTS[months].sum()
    day = rng.choice(len(days), n_d + n_o, p=p_day)
    tiebreak = rng.random(n_d + n_o)

    # Per-city serial numbers in date order make ids unique and look like registry ids.
    order = np.lexsort((tiebreak, day, city))
    del tiebreak
    city, day, industry, capital = city[order], day[order], industry[order], capital[order]
    del order
    starts = np.flatnonzero(np.r_[True, city[1:] != city[:-1]])
    serial = np.arange(len(city)) - np.repeat(starts, np.diff(np.r_[starts, len(city)])) + 1
    final = np.lexsort((serial, city, day))

    text = _RecordText(cities, year, days)
    with open(path, "wb") as fh:
        fh.write((HEADER + "\n").encode("utf-8"))
        for start in range(0, len(final), chunk_rows):
            rows = final[start:start + chunk_rows]
            fh.write(text.lines(city[rows], serial[rows], day[rows], industry[rows], capital[rows]))
    return len(final)


class _RecordText:
    """The CSV lines of records, formatted column-wise by pyarrow (the same text as
    f"{prefix}{serial:07d}0,{name},{date},{code},{capital:.2f}" per record)."""

    def __init__(self, cities: CityTable, year: int, days: np.ndarray):
        self.prefix = pa.array([f"91{code}{year % 100:02d}" for code in cities.code], pa.string())
        self.names = pa.array(list(cities.name_zh), pa.string())
        self.dates = pa.array([str(d) for d in days], pa.string())
        self.codes = pa.array([c for c, _ in DIGITAL_CLASSES + OTHER_CLASSES], pa.string())

    def lines(self, city, serial, day, industry, capital) -> pa.Buffer:
        # capital is already rounded to cents: its :.2f text is the whole cents, exactly.
        cents = np.rint(capital * 100).astype(np.int64)
        firm_id = pc.binary_join_element_wise(
            pc.take(self.prefix, city), _zero_padded(serial, 7), "0", "")
        capital_text = pc.binary_join_element_wise(
            _text(cents // 100), _zero_padded(cents % 100, 2), ".")
        line = pc.binary_join_element_wise(
            firm_id, pc.take(self.names, city), pc.take(self.dates, day), pc.take(self.codes, industry),
            capital_text, ",")
        line = pc.binary_join_element_wise(line, "\n", "")
        offsets = np.frombuffer(line.buffers()[1], dtype=np.int32)[line.offset:line.offset + len(line) + 1]
        return line.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _zero_padded(values: np.ndarray, width: int) -> pa.Array:
    # like :0{width}d: longer numbers are not cut
    return pc.utf8_lpad(_text(values), width=width, padding="0")
