"""Who is treated by the Big Data Pilot Zone, when, how strongly, and who gets spillovers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warehouse.sample.cities import CityTable, read_seed

POLICY = "big_data_pilot_zone"
SPILLOVER_RADIUS_KM = 150.0
SPILLOVER_SHARE = 0.15
# Ramp of the effect over event time e >= 0: 1 - RAMP**(e+1), i.e. a quarter of the long-run
# effect in the adoption year, about 90 % after seven years.
RAMP = 0.75
TIER_MULTIPLIER = {
    "megacity": 1.5,
    "extra_large": 1.3,
    "large_I": 1.15,
    "large_II": 1.0,
    "medium": 0.9,
    "small": 0.8,
}
IP_CITY_MULTIPLIER = 1.30
EGOV_CITY_MULTIPLIER = 1.20
# Lognormal city-specific heterogeneity on top of the systematic moderators.
HETEROGENEITY_SD = 0.15
# Adoption designs: "single" dates every zone at the seed's year_effective (one cohort, 2016);
# "staggered" uses its year_staggered (Guizhou 2015, cross-regional zones 2016, the other
# batch-2 zones 2017) with dynamic effects that differ by cohort: the earlier a cohort, the
# larger its long-run effect and the faster it ramps up. Effects that grow with exposure and
# differ by cohort are what biases two-way FE DID (already-treated cohorts serve as controls).
ADOPTION_DESIGNS = ("single", "staggered")
COHORT_SCALE = {2015: 1.5, 2016: 1.0, 2017: 0.7}
COHORT_RAMP = {2015: 0.6, 2016: RAMP, 2017: 0.9}


@dataclass(frozen=True)
class PolicyDesign:
    adoption: np.ndarray  # first treated year per reference city (0 = never treated)
    treated: np.ndarray  # bool per reference city
    ip_city: np.ndarray  # core IP-demonstration city (any batch)
    egov_city: np.ndarray  # core e-government comprehensive pilot
    neighbour: np.ndarray  # untreated and within SPILLOVER_RADIUS_KM of a treated city
    nearest_treated_km: np.ndarray
    neighbour_start: np.ndarray  # a neighbour's spillover starts with its first treated neighbour
    design: str = "single"

    @classmethod
    def load(cls, cities: CityTable, seeds_dir: Path | None = None, adoption: str = "single") -> "PolicyDesign":
        if adoption not in ADOPTION_DESIGNS:
            raise ValueError(f"adoption design must be one of {', '.join(ADOPTION_DESIGNS)}; got {adoption!r}")
        rows = [r for r in read_seed("ref_policies.csv", seeds_dir) if r["coding"] == "core"]

        def members(policy: str) -> np.ndarray:
            codes = {r["city_code"] for r in rows if r["policy"] == policy}
            return np.array([c in codes for c in cities.code])

        column = "year_effective" if adoption == "single" else "year_staggered"
        dates = {r["city_code"]: int(r[column]) for r in rows if r["policy"] == POLICY}
        years = set(dates.values())
        # The single design keeps the DID estimand unambiguous: the seeds must give one date.
        if adoption == "single" and len(years) != 1:
            raise ValueError(f"expected one adoption year for {POLICY}, got {sorted(years)}")
        if adoption == "staggered" and not years <= set(COHORT_SCALE):
            raise ValueError(f"staggered cohorts {sorted(years)} need parameters in COHORT_SCALE/COHORT_RAMP")
        treated = members(POLICY)
        first = np.array([dates.get(c, 0) for c in cities.code])
        dist = cities.distances_km()
        within = treated[None, :] & (dist <= SPILLOVER_RADIUS_KM)
        nearest = np.where(treated[None, :], dist, np.inf).min(axis=1)
        neighbour = ~treated & (nearest <= SPILLOVER_RADIUS_KM)
        start = np.where(within, first[None, :], np.iinfo(np.int64).max).min(axis=1)
        return cls(
            adoption=first,
            treated=treated,
            ip_city=members("ip_demonstration_city"),
            egov_city=members("egov_comprehensive_pilot"),
            neighbour=neighbour,
            nearest_treated_km=nearest,
            neighbour_start=np.where(neighbour, start, 0),
            design=adoption,
        )

    @property
    def adoption_year(self) -> int:
        """The first adoption year (the only one in the single design)."""
        return int(self.adoption[self.treated].min())

    @property
    def cohorts(self) -> list[int]:
        return sorted({int(a) for a in self.adoption[self.treated]})

    def post(self, years: np.ndarray) -> np.ndarray:
        """Treated and on or after its adoption year (city x year)."""
        return self.treated[:, None] & (years[None, :] >= self.adoption[:, None])

    def heterogeneity(self, tiers: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Long-run effect multiplier h_i (mean-one lognormal noise times the moderators)."""
        tier = np.array([TIER_MULTIPLIER[t] for t in tiers])
        mods = np.where(self.ip_city, IP_CITY_MULTIPLIER, 1.0) * np.where(self.egov_city, EGOV_CITY_MULTIPLIER, 1.0)
        return tier * mods * np.exp(HETEROGENEITY_SD * z - HETEROGENEITY_SD**2 / 2)

    def _cohort_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """Long-run scale and ramp rate per city (1 and RAMP everywhere in the single design)."""
        if self.design == "single":
            n = len(self.treated)
            return np.ones(n), np.full(n, RAMP)
        scale = np.array([COHORT_SCALE.get(int(a), 1.0) if t else 1.0 for a, t in zip(self.adoption, self.treated)])
        rate = np.array([COHORT_RAMP.get(int(a), RAMP) if t else RAMP for a, t in zip(self.adoption, self.treated)])
        return scale, rate

    def ramp(self, years: np.ndarray) -> np.ndarray:
        """1 - rate**(e+1) from each city's own start (adoption, or first treated neighbour)."""
        start = np.where(self.treated, self.adoption, self.neighbour_start)
        _, rate = self._cohort_parameters()
        e = years[None, :] - start[:, None]
        active = (start > 0)[:, None] & (e >= 0)
        return np.where(active, 1.0 - rate[:, None] ** (np.maximum(e, 0) + 1), 0.0)

    def exposure(self, years: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Policy intensity tau (city x year): zero before adoption and for the never-exposed."""
        scale, _ = self._cohort_parameters()
        share = np.where(self.treated, scale, np.where(self.neighbour, SPILLOVER_SHARE, 0.0))
        return (share * h)[:, None] * self.ramp(years)
