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


@dataclass(frozen=True)
class PolicyDesign:
    adoption_year: int
    treated: np.ndarray  # bool per reference city
    ip_city: np.ndarray  # core IP-demonstration city (any batch)
    egov_city: np.ndarray  # core e-government comprehensive pilot
    neighbour: np.ndarray  # untreated and within SPILLOVER_RADIUS_KM of a treated city
    nearest_treated_km: np.ndarray

    @classmethod
    def load(cls, cities: CityTable, seeds_dir: Path | None = None) -> "PolicyDesign":
        rows = [r for r in read_seed("ref_policies.csv", seeds_dir) if r["coding"] == "core"]

        def members(policy: str) -> np.ndarray:
            codes = {r["city_code"] for r in rows if r["policy"] == policy}
            return np.array([c in codes for c in cities.code])

        years = {int(r["year_effective"]) for r in rows if r["policy"] == POLICY}
        # A single cohort keeps the DID estimand unambiguous; the seeds say so, check it.
        if len(years) != 1:
            raise ValueError(f"expected one adoption year for {POLICY}, got {sorted(years)}")
        treated = members(POLICY)
        dist = cities.distances_km()
        nearest = np.where(treated[None, :], dist, np.inf).min(axis=1)
        neighbour = ~treated & (nearest <= SPILLOVER_RADIUS_KM)
        return cls(
            adoption_year=years.pop(),
            treated=treated,
            ip_city=members("ip_demonstration_city"),
            egov_city=members("egov_comprehensive_pilot"),
            neighbour=neighbour,
            nearest_treated_km=nearest,
        )

    def heterogeneity(self, tiers: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Long-run effect multiplier h_i (mean-one lognormal noise times the moderators)."""
        tier = np.array([TIER_MULTIPLIER[t] for t in tiers])
        mods = np.where(self.ip_city, IP_CITY_MULTIPLIER, 1.0) * np.where(self.egov_city, EGOV_CITY_MULTIPLIER, 1.0)
        return tier * mods * np.exp(HETEROGENEITY_SD * z - HETEROGENEITY_SD**2 / 2)

    def ramp(self, years: np.ndarray) -> np.ndarray:
        e = years - self.adoption_year
        return np.where(e >= 0, 1.0 - RAMP ** (np.maximum(e, 0) + 1), 0.0)

    def exposure(self, years: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Policy intensity tau (city x year): zero before adoption and for the never-exposed."""
        share = np.where(self.treated, 1.0, np.where(self.neighbour, SPILLOVER_SHARE, 0.0))
        return (share * h)[:, None] * self.ramp(years)[None, :]
