"""Orchestration: simulate once, then write every delivery and the ground truth."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warehouse.sample import dgp, firms, mess, national, truth, writers
from warehouse.sample.cities import CityTable
from warehouse.sample.policy import PolicyDesign

DEFAULT_SEED = 20240601
FOLDERS = ("city_yearbook", "national", "patents", "enterprises", "historical", "digital_finance")
# What this generator owns inside out_dir; anything else there is left alone.
_OWNED = {
    "city_yearbook": re.compile(r"^中国城市统计年鉴_\d{4}\.(csv|xlsx)$"),
    "national": re.compile(r"^national_\d{4}\.csv$"),
    "patents": re.compile(r"^patents_\d{4}\.csv$"),
    "enterprises": re.compile(r"^registrations_\d{4}\.csv$"),
    "historical": re.compile(r"^(telephones_1984|urban_population_2014)\.csv$"),
    "digital_finance": re.compile(r"^北京大学数字普惠金融指数_地级市\.csv$"),
}
# Independent random streams, so that e.g. firm_scale changes the firm records only.
_STREAMS = ("city", "time", "firm_counts", "firm_records", "mess", "patent_names", "nqp")


@dataclass
class Sample:
    seed: int
    firm_scale: float
    years: np.ndarray
    cities: CityTable
    design: PolicyDesign
    latent: dgp.Latent
    firms: firms.FirmCounts
    usd_cny: np.ndarray
    truth: dict
    panel: truth.PanelTruth
    rngs: dict[str, np.random.Generator]


def simulate(
    seed: int = DEFAULT_SEED,
    start_year: int = 2011,
    end_year: int = 2023,
    firm_scale: float = 1.0,
    seeds_dir: Path | None = None,
    adoption: str = "single",
) -> Sample:
    """Everything except the files: latent data, firm counts and the ground truth."""
    if end_year <= start_year:
        raise ValueError("end_year must be after start_year (the index needs a previous year)")
    if not firm_scale > 0:
        raise ValueError("firm_scale must be positive")
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    years = np.arange(start_year, end_year + 1)
    cities = CityTable.load(seeds_dir)
    design = PolicyDesign.load(cities, seeds_dir, adoption)
    latent = dgp.simulate(cities, design, years, rngs["city"], rngs["time"], rngs["nqp"])
    counts = firms.counts(cities, latent, rngs["firm_counts"], firm_scale)
    usd_cny = national.series(years)["usd_cny"]
    gt, pt = truth.build(cities, design, latent, counts, usd_cny, seed, firm_scale)
    return Sample(seed, firm_scale, years, cities, design, latent, counts, usd_cny, gt, pt, rngs)


def _prepare(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for folder, pattern in _OWNED.items():
        d = out_dir / folder
        d.mkdir(exist_ok=True)
        for p in d.iterdir():
            if p.is_file() and pattern.match(p.name):
                p.unlink()


def write_sample(
    out_dir: Path,
    seed: int = DEFAULT_SEED,
    start_year: int = 2011,
    end_year: int = 2023,
    firm_scale: float = 1.0,
    adoption: str = "single",
) -> dict:
    """Write a complete synthetic delivery under out_dir and return what was written.

    Returns {"out_dir", "files" (paths relative to out_dir), "ground_truth", "seconds"}.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    s = simulate(seed, start_year, end_year, firm_scale, adoption=adoption)
    _prepare(out_dir)
    c, lat = s.cities, s.latent
    written: list[Path] = []

    missing = mess.missing_mask(c, s.years, lat.published, s.rngs["mess"])
    markers = mess.marker_choice(s.rngs["mess"], missing.size).reshape(missing.shape)
    for t, year in enumerate(s.years):
        y = int(year)
        labels, _variants = mess.city_labels(c, y, s.rngs["mess"])
        values = {v: a[:, t] for v, a in lat.factual.items()}
        written.append(
            writers.write_yearbook(out_dir / "city_yearbook", c, mess.layout(y), values, labels,
                                   lat.published[:, t], missing[:, t], markers[:, t])  # fmt: skip
        )
        written.append(writers.write_national(out_dir / "national", y))
        names = writers.patent_city_names(c, y, s.rngs["patent_names"])
        written.append(writers.write_patents(out_dir / "patents", c, y, values, lat.published[:, t], names))
        path = out_dir / "enterprises" / f"registrations_{y}.csv"
        firms.write_registrations(path, c, y, s.firms.digital[:, t], s.firms.other[:, t], s.rngs["firm_records"])
        written.append(path)
    written += writers.write_historical(out_dir / "historical", c, lat.phones1984, lat.core2014)
    written.append(writers.write_digital_finance(out_dir / "digital_finance", c, s.years,
                                                 lat.factual["digital_finance"], lat.published))
    written.append(writers.write_readme(out_dir, seed, start_year, end_year, firm_scale, s.design))
    gt_path = out_dir / "ground_truth.json"
    gt_path.write_bytes(truth.dumps(s.truth).encode("utf-8"))
    written.append(gt_path)
    return {
        "out_dir": str(out_dir),
        "files": sorted(p.relative_to(out_dir).as_posix() for p in written),
        "ground_truth": str(gt_path),
        "seconds": round(time.perf_counter() - t0, 3),
    }
