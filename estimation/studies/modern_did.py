"""What the studies' readers ask next: heterogeneity-robust DID, sensitivity to parallel trends,
spillovers and double ML, all on the warehouse's analysis panel.

On the resilience index (``res``), city and year, with each city's adoption year as the cohort:

* two-way FE DID (the studies' estimator, no controls, as the robust estimators below) beside
  Callaway-Sant'Anna (never-treated and not-yet-treated controls), Sun-Abraham, the
  Borusyak-Jaravel-Spiess imputation estimator (with its pre-trend test) and Gardner's two-stage
  DID - each with its simple ATT and event-time path;
* the Goodman-Bacon decomposition of the TWFE coefficient (which 2x2 comparisons it averages);
* HonestDiD (Rambachan-Roth) sensitivity of the study's event study (Table 3's controls, every
  observed lead and lag, base k = -1) for the average post-adoption effect: relative magnitudes
  (Mbar) and smoothness (M), with the breakdown values;
* spatial DID with the warehouse's spatial weights (marts/spatial_weights, inverse distance):
  W·DID (direct and spillover effects, CRV1 by city), the spatial Durbin model with city and year
  FE by ML (LeSage-Pace direct / indirect / total effects), and the DID by distance band of
  untreated cities to the nearest treated one;
* the DML DID (partialling out city and year effects, lasso, 5 folds by city) with Table 3's
  controls, as the industrial-chain study does.

In the bundled sample (one cohort, 2016) the robust estimators coincide with TWFE up to their
comparisons; `cityres sample --adoption staggered` gives three cohorts with effects that differ
by cohort, where they do not. Each estimate is compared with the generator's truth when the
sample's ground truth is at hand (:func:`truth_lines`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from estimation.engine.bacon import BaconResult, bacon_decomposition
from estimation.engine.did_cs import CSResult, cs_att_gt
from estimation.engine.did_imputation import did2s, did_imputation, pretrend_test
from estimation.engine.did_sa import sun_abraham
from estimation.engine.dml import dml_did
from estimation.engine.event_study import EventStudyResult, event_term, run_event_study
from estimation.engine.honest import HonestResult, honest_sensitivity
from estimation.engine.model import feols
from estimation.engine.persist import ESTIMATES_DDL, MODEL_TESTS_DDL
from estimation.engine.result import FeolsResult
from estimation.engine.spatial import spatial_durbin_did, spatial_lag_did, spillover_by_distance_band
from estimation.engine.sqlutil import insert_rows

from .common import CLUSTER, PANEL, TIME, TREATMENT, UNIT
from .resilience import CONTROLS, OUTCOME

COHORT = "adoption_year"
WEIGHTS = "main.spatial_weights"
WEIGHTS_SCHEME = "inverse_distance"
COORDINATES = "staging.stg_reference__cities"
CS_BOOTSTRAP_DRAWS = 999
CS_SEED = 20240601
DML_SEED = 20240601
DML_FOLDS = 5
HONEST_MBAR = (0.0, 0.25, 0.5, 1.0, 2.0)
# Smoothness grid in multiples of the largest |second difference| of the pre-adoption coefficients
# (with the base at 0): M = 1 allows the differential trend to bend after adoption as much as it
# bent at most before it.
HONEST_SD_MULTIPLES = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0)
DISTANCE_BANDS_KM = (0, 50, 100, 150, 200, 300)
SPILLOVER_KM = 150
Z95 = 1.959963984540054  # normal 97.5% quantile: the aggregates' CIs are normal-based
LABELS = {
    "twfe": "Two-way FE DID",
    "cs_never": "Callaway-Sant'Anna (never-treated controls)",
    "cs_notyet": "Callaway-Sant'Anna (not-yet-treated controls)",
    "sa": "Sun-Abraham",
    "bjs": "Borusyak-Jaravel-Spiess imputation",
    "did2s": "Gardner two-stage DID",
}


def balanced_panel_sql(panel: str = PANEL) -> str:
    """The cities observed with the outcome in every year of the panel (the robust estimators and
    the Bacon decomposition need a balanced panel), with the cohort 0 for never treated."""
    return f"""
        with years as (select count(distinct {TIME}) as n from {panel}),
        complete as (
            select {UNIT} from {panel} where {OUTCOME} is not null
            group by {UNIT} having count(distinct {TIME}) = (select n from years)
        )
        select p.{UNIT}, p.{TIME}, p.{OUTCOME}, p.{TREATMENT}, coalesce(p.{COHORT}, 0) as {COHORT},
               {', '.join(f'p.{c}' for c in CONTROLS)}
        from {panel} as p join complete using ({UNIT})
    """


def weights_sql(scheme: str = WEIGHTS_SCHEME) -> str:
    return (f"select city_code as unit_i, neighbour_code as unit_j, weight as w_ij from {WEIGHTS} "
            f"where scheme = '{scheme}'")


@dataclass
class Spatial:
    wdid: object  # SpilloverDIDResult
    durbin: object  # SpatialResult
    bands: object  # DistanceBandResult
    within: object  # DistanceBandResult with one band, 0 to SPILLOVER_KM: the effect on near untreated cities
    scheme: str = WEIGHTS_SCHEME

    def near(self) -> dict:
        """The DID on untreated cities within SPILLOVER_KM of a treated one (after its adoption)."""
        return self.within.bands.iloc[0].to_dict()


@dataclass
class ModernDID:
    cohorts: dict[int, int]
    n_units: int
    estimates: pd.DataFrame  # estimator, aggregate, key, coef, se
    twfe: FeolsResult
    cs: dict[str, CSResult]
    sa: object
    bjs: object
    did2s: object
    bjs_pretrend: object
    bacon: BaconResult
    event_study: EventStudyResult
    honest: dict[str, HonestResult]
    spatial: Spatial | None
    dml: object
    notes: list[str] = field(default_factory=list)

    @property
    def staggered(self) -> bool:
        return len(self.cohorts) > 1

    def simple(self) -> pd.DataFrame:
        """One row per estimator: its overall ATT with SE and 95% CI (normal)."""
        s = self.estimates[self.estimates["aggregate"] == "simple"].copy()
        s["ci_low"], s["ci_high"] = s["coef"] - Z95 * s["se"], s["coef"] + Z95 * s["se"]
        return s.reset_index(drop=True)

    def dynamic(self) -> pd.DataFrame:
        return self.estimates[self.estimates["aggregate"] == "dynamic"].reset_index(drop=True)

    def plot_event_studies(self, path):
        from estimation.engine.figures import overlay_event_studies_figure

        return overlay_event_studies_figure(self.dynamic(), path, LABELS,
                                            "Event-time effects: TWFE event study and heterogeneity-robust estimators")

    def plot_bacon(self, path):
        from estimation.engine.figures import bacon_figure

        return bacon_figure(self.bacon.to_frame(), self.bacon.twfe, path)

    def plot_honest(self, path):
        """Relative magnitudes by Mbar; smoothness by M in multiples of the pre-period's largest bend
        (the M values themselves are tiny and unevenly spaced, which makes unreadable ticks)."""
        from dataclasses import replace

        from estimation.engine.figures import honest_panels_figure

        sd = self.honest["smoothness"]
        unit = float(sd.rows["M"].max()) / HONEST_SD_MULTIPLES[-1]
        scaled = replace(sd, rows=sd.rows.assign(M=sd.rows["M"] / unit)) if unit > 0 else sd
        return honest_panels_figure({"relative_magnitude": self.honest["relative_magnitude"], "smoothness": scaled},
                                    path, {"smoothness": f"M / {unit:.2g} (the largest pre-adoption bend)"})

    def plot_bands(self, path):
        from estimation.engine.figures import distance_band_figure

        return distance_band_figure(self.spatial.bands.bands, path)

    def render(self, fmt: str = "markdown") -> str:
        from estimation.engine.tables import simple_table

        s = self.simple()
        rows = [[LABELS.get(r.estimator, r.estimator), f"{r.coef:.5f}", f"({r.se:.5f})",
                 f"[{r.ci_low:.5f}, {r.ci_high:.5f}]"] for r in s.itertuples()]
        b = self.bacon.by_type()
        rows += [[f"Bacon: {r['type']}", f"{r['avg_estimate']:.5f}", f"weight {r['weight']:.3f}", ""]
                 for r in b]
        if self.spatial is not None:
            wd = self.spatial.wdid.to_dict()
            for term, label in (("direct", "W·DID: direct"), ("spillover", "W·DID: spillover")):
                rows.append([label, f"{wd[term]:.5f}", f"({wd[term + '_se']:.5f})", ""])
            eff = self.spatial.durbin.effects.set_index("variable").loc[TREATMENT]
            for kind in ("direct", "indirect", "total"):
                rows.append([f"Spatial Durbin: {kind} effect", f"{eff[kind]:.5f}", f"({eff[kind + '_se']:.5f})", ""])
        rows.append([f"DML DID (lasso, {DML_FOLDS} folds by city)", f"{self.dml.coef:.5f}", f"({self.dml.se:.5f})",
                     f"[{self.dml.ci[0]:.5f}, {self.dml.ci[1]:.5f}]"])
        note = (f"Outcome: resilience index; {self.n_units} cities with the index in every year; cohorts "
                + ", ".join(f"{g}: {n}" for g, n in self.cohorts.items())
                + ". SEs: CRV1 by city (TWFE, SA, W·DID), influence function (CS), BJS conservative, "
                  "GMM (did2s), ML information matrix with simulated effects (spatial Durbin), "
                  "orthogonal score clustered by city (DML).")
        return simple_table(["Estimator", "ATT", "SE", "95% CI"], rows, note, fmt)


# ------------------------------------------------------------------ running


def _cohorts(con, relation: str) -> tuple[dict[int, int], int]:
    rows = con.execute(f"select {COHORT}, count(distinct {UNIT}) from ({relation}) group by 1 order by 1").fetchall()
    cohorts = {int(g): int(n) for g, n in rows if g}
    return cohorts, sum(int(n) for _, n in rows)


def _flatten(name: str, aggregates: dict) -> list[dict]:
    """The ``aggregates`` of a result's to_dict() as rows (estimator, aggregate, key, coef, se)."""
    out = []
    for kind, agg in aggregates.items():
        if agg is None:
            continue
        out.append({"estimator": name, "aggregate": kind, "key": None, "coef": agg.get("coef"), "se": agg.get("se")})
        key = {"dynamic": "event_time", "group": "group", "calendar": "time"}.get(kind)
        for row in agg.get("rows", []) if key else []:
            k = row.get(key, row.get("cohort") if kind == "group" else None)  # SA/BJS name group rows "cohort"
            out.append({"estimator": name, "aggregate": kind, "key": k, "coef": row.get("coef"),
                        "se": row.get("se")})
    return out


def _twfe_rows(twfe: FeolsResult, es: EventStudyResult) -> list[dict]:
    t = twfe.tidy().set_index("term").loc[TREATMENT]
    rows = [{"estimator": "twfe", "aggregate": "simple", "key": None, "coef": float(t.coef), "se": float(t.se)}]
    for r in es.tidy().itertuples():
        rows.append({"estimator": "twfe", "aggregate": "dynamic", "key": int(r.event_time), "coef": float(r.coef),
                     "se": float(r.se)})
    return rows


def _honest(es: EventStudyResult) -> dict[str, HonestResult]:
    """HonestDiD on the event study: the leads before the base, the lags from 0, their CRV1 vcov."""
    leads = [k for k in es.event_times if k < es.base]
    lags = [k for k in es.event_times if k >= 0]
    terms = [event_term(k) for k in leads + lags]
    beta = es.model.coef[terms].to_numpy()
    sigma = es.model.vcov_matrix.loc[terms, terms].to_numpy()
    avg = np.full(len(lags), 1.0 / len(lags))
    pre = np.append(beta[: len(leads)], 0.0)  # the leads, oldest first, then the base period at 0
    curvature = float(np.abs(np.diff(pre, 2)).max()) if len(pre) >= 3 else float(np.abs(np.diff(pre)).max())
    return {
        "relative_magnitude": honest_sensitivity(beta, sigma, len(leads), len(lags), method="relative_magnitude",
                                                 grid=HONEST_MBAR, l_vec=avg),
        "smoothness": honest_sensitivity(beta, sigma, len(leads), len(lags), method="smoothness", l_vec=avg,
                                         grid=[m * curvature for m in HONEST_SD_MULTIPLES], ci="FLCI"),
    }


def _spatial(con, relation: str) -> tuple[Spatial | None, list[str]]:
    try:
        con.execute(f"select 1 from {WEIGHTS} limit 1")
    except duckdb.CatalogException:
        return None, [f"Spatial DID not run: the warehouse has no {WEIGHTS} (an older vintage)."]
    w = weights_sql()
    wdid = spatial_lag_did(con, relation, w, outcome=OUTCOME, unit=UNIT, time=TIME, treatment=TREATMENT,
                           controls=CONTROLS, vcov={"CRV1": CLUSTER})
    durbin = spatial_durbin_did(con, relation, w, outcome=OUTCOME, unit=UNIT, time=TIME, treatment=TREATMENT,
                                controls=CONTROLS, durbin=[TREATMENT])
    coords = (f"select distinct p.{UNIT}, c.lat, c.lon from ({relation}) as p "
              f"join {COORDINATES} as c using ({UNIT})")
    bands, within = (spillover_by_distance_band(con, relation, coords, outcome=OUTCOME, unit=UNIT, time=TIME,
                                                treatment=TREATMENT, bands_km=b, controls=CONTROLS,
                                                vcov={"CRV1": CLUSTER})
                     for b in (DISTANCE_BANDS_KM, (0, SPILLOVER_KM)))
    return Spatial(wdid, durbin, bands, within), []


def run_modern_did(con: duckdb.DuckDBPyConnection, panel: str = PANEL) -> ModernDID:
    relation = balanced_panel_sql(panel)
    cohorts, n_units = _cohorts(con, relation)
    common = dict(outcome=OUTCOME, unit=UNIT, time=TIME, cohort=COHORT)
    twfe = feols(con, relation, f"{OUTCOME} ~ {TREATMENT} | {UNIT} + {TIME}", vcov={"CRV1": CLUSTER})
    es_plain = run_event_study(con, relation, OUTCOME, None, None, -1, [], False, cohort=COHORT, unit=UNIT,
                               time=TIME, cluster=CLUSTER)
    cs = {control: cs_att_gt(con, relation, **common, control=control, bootstrap_draws=CS_BOOTSTRAP_DRAWS,
                             seed=CS_SEED) for control in ("never", "notyet")}
    sa = sun_abraham(con, relation, OUTCOME, UNIT, TIME, COHORT, cluster=CLUSTER)
    bjs = did_imputation(con, relation, OUTCOME, UNIT, TIME, COHORT, cluster=CLUSTER, horizons=None)
    two = did2s(con, relation, OUTCOME, UNIT, TIME, COHORT, cluster=CLUSTER, horizons=None)
    pre = pretrend_test(con, relation, OUTCOME, UNIT, TIME, COHORT, cluster=CLUSTER, leads=3)
    bacon = bacon_decomposition(con, relation, **common)
    es_study = run_event_study(con, relation, OUTCOME, None, None, -1, list(CONTROLS), False, cohort=COHORT,
                               unit=UNIT, time=TIME, cluster=CLUSTER)
    honest = _honest(es_study)
    spatial, notes = _spatial(con, relation)
    dml = dml_did(con, relation, outcome=OUTCOME, treatment=TREATMENT, controls=list(CONTROLS), unit=UNIT,
                  time=TIME, learner="lasso", n_folds=DML_FOLDS, seed=DML_SEED)
    rows = _twfe_rows(twfe, es_plain)
    rows += _flatten("cs_never", cs["never"].to_dict()["aggregates"])
    rows += _flatten("cs_notyet", cs["notyet"].to_dict()["aggregates"])
    rows += _flatten("sa", sa.to_dict()["aggregates"])
    rows += _flatten("bjs", bjs.to_dict()["aggregates"])
    rows += _flatten("did2s", two.to_dict()["aggregates"])
    estimates = pd.DataFrame(rows, columns=["estimator", "aggregate", "key", "coef", "se"])
    return ModernDID(cohorts, n_units, estimates, twfe, cs, sa, bjs, two, pre, bacon, es_study, honest, spatial,
                     dml, notes)


# ------------------------------------------------------------------ persistence

DECOMPOSITION_DDL = """
create table if not exists main.did_decomposition (
    run_id varchar not null, model_id varchar not null, comparison_type varchar not null,
    treated_cohort integer, control_cohort integer, estimate double, weight double, vintage varchar,
    created_at timestamp not null
)
"""

SENSITIVITY_DDL = """
create table if not exists main.sensitivity (
    run_id varchar not null, model_id varchar not null, restriction varchar not null, method varchar not null,
    m double not null, ci_low double, ci_high double, vintage varchar, created_at timestamp not null
)
"""


def _term(aggregate: str, key) -> str:
    """ATT, ATT(e=k), ATT(g=2016), ATT(t=2018); ATT(dynamic) etc. for an aggregation's overall value."""
    if aggregate == "simple":
        return "ATT"
    if key is None or (isinstance(key, float) and not np.isfinite(key)):
        return f"ATT({aggregate})"
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return {"dynamic": f"ATT(e={key})", "group": f"ATT(g={key})", "calendar": f"ATT(t={key})"}[aggregate]


def _estimate_row(run_id, model_id, spec, term, coef, se, nobs, n_clusters, vcov, vintage, synthetic):
    se = None if se is None or not np.isfinite(se) else float(se)
    t = coef / se if se else None
    p = float(2 * stats.norm.sf(abs(t))) if t is not None else None
    return (run_id, model_id, spec, term, float(coef), se, t, p, coef - Z95 * se if se else None,
            coef + Z95 * se if se else None, nobs, None, None, n_clusters, vcov, vintage, synthetic)


def persist_modern_did(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                       m: ModernDID) -> int:
    """main.estimates (every estimator's aggregates, spatial effects, DML), main.did_decomposition
    (Bacon 2x2s), main.sensitivity (HonestDiD robust CIs) and the BJS pre-trend test."""
    con.execute(ESTIMATES_DDL)
    con.execute(DECOMPOSITION_DDL)
    con.execute(SENSITIVITY_DDL)
    con.execute(MODEL_TESTS_DDL)
    n_obs = int(m.twfe.nobs)
    vcovs = {"twfe": f"CRV1:{CLUSTER}", "cs_never": "influence function", "cs_notyet": "influence function",
             "sa": f"CRV1:{CLUSTER}", "bjs": f"BJS conservative:{CLUSTER}", "did2s": f"GMM:{CLUSTER}"}
    rows = [_estimate_row(run_id, f"modern_did.{r.estimator}", LABELS[r.estimator], _term(r.aggregate, r.key),
                          r.coef, r.se, n_obs, m.n_units, vcovs[r.estimator], vintage, synthetic)
            for r in m.estimates.itertuples() if r.coef is not None and np.isfinite(r.coef)]
    if m.spatial is not None:
        wd = m.spatial.wdid.to_dict()
        for term in ("direct", "spillover"):
            rows.append(_estimate_row(run_id, "modern_did.wdid", "W·DID (inverse distance W)", term, wd[term],
                                      wd[f"{term}_se"], n_obs, m.n_units, f"CRV1:{CLUSTER}", vintage, synthetic))
        eff = m.spatial.durbin.effects.set_index("variable").loc[TREATMENT]
        for kind in ("direct", "indirect", "total"):
            rows.append(_estimate_row(run_id, "modern_did.spatial_durbin", "spatial Durbin DID, city and year FE, ML",
                                      kind, eff[kind], eff[f"{kind}_se"], n_obs, None, "ML (simulated effects)",
                                      vintage, synthetic))
        rho = m.spatial.durbin.coef["rho"]
        rows.append(_estimate_row(run_id, "modern_did.spatial_durbin", "spatial Durbin DID, city and year FE, ML",
                                  "rho", rho, m.spatial.durbin.se["rho"], n_obs, None, "ML", vintage, synthetic))
        for r in pd.concat([m.spatial.bands.bands, m.spatial.within.bands]).itertuples():
            rows.append(_estimate_row(run_id, "modern_did.distance_bands", "DID by distance band to the nearest "
                                      "treated city", r.band, r.coef, r.se, n_obs, m.n_units, f"CRV1:{CLUSTER}",
                                      vintage, synthetic))
    rows.append(_estimate_row(run_id, "modern_did.dml", f"DML DID, lasso, {DML_FOLDS} folds by city", TREATMENT,
                              m.dml.coef, m.dml.se, n_obs, m.n_units, f"orthogonal score, CRV:{UNIT}", vintage,
                              synthetic))
    insert_rows(con, "main.estimates", rows, trailing="now()")
    frame = m.bacon.to_frame()
    insert_rows(con, "main.did_decomposition",
                [(run_id, "modern_did.bacon", r.type, int(r.treated), int(r.control), float(r.estimate),
                  float(r.weight), vintage) for r in frame.itertuples()], trailing="now()")
    for restriction, res in m.honest.items():
        insert_rows(con, "main.sensitivity",
                    [(run_id, "modern_did.honest", restriction, r.method, float(r.M), float(r.lb), float(r.ub),
                      vintage) for r in res.rows.itertuples()], trailing="now()")
    pre = m.bjs_pretrend
    con.execute("insert into main.model_tests values (?, ?, ?, ?, ?, ?, ?, ?, now())",
                [run_id, "modern_did.bjs", "pretrend_F", float(pre.wald.f), float(pre.wald.df1),
                 float(pre.wald.df2), float(pre.wald.p_f), vintage])
    return len(rows)


# ------------------------------------------------------------------ words for the report



def _covers(coef: float, se: float, value: float) -> str:
    return "covers it" if coef - Z95 * se <= value <= coef + Z95 * se else "does NOT cover it"


def truth_lines(m: ModernDID, ground_truth: dict, panel_years: tuple[int, int] | None = None) -> list[str]:
    """Each estimator's overall ATT against the generator's truth, and what separates them."""
    if panel_years is not None and tuple(panel_years) != tuple(ground_truth["years"]["panel"]):
        return []
    att = ground_truth["att"]["resilience_index"]
    s = m.simple().set_index("estimator")
    lines = [f"True ATT (mean effect over pilot city-years at or after each city's adoption, generator ground "
             f"truth): **{att:.5f}**. " + "; ".join(f"{LABELS[e]} {r.coef:.5f}, CI {_covers(r.coef, r.se, att)}"
                                                   for e, r in s.iterrows()) + "."]
    st = ground_truth.get("staggered")
    if st is None:
        lines.append("One adoption cohort: the robust estimators compare the pilots with the never-treated cities "
                     "only, so they differ from two-way FE only through their weights over years (and "
                     "not-yet-treated controls coincide with never-treated ones after adoption).")
        return lines
    tw, cs = st["twfe"], st.get("cs_never")
    lines.append(
        f"Two-way FE on the complete latent panel: {tw['coefficient_on_latent']:.5f} = the effects as TWFE weights "
        f"them, {tw['effect_part']:.5f} (weighting bias {tw['weighting_bias']:+.5f} against the ATT; "
        f"{tw['negative_weights']} negative weights) + the untreated paths, {tw['counterfactual_part']:+.5f}.")
    if cs is None:
        return lines
    lines.append(
        f"Callaway-Sant'Anna (never-treated) on the latent panel: {cs['coefficient_on_latent']:.5f} = effects "
        f"{cs['effect_part']:.5f} (the ATT less the spillover its control cities received) + untreated paths "
        f"{cs['counterfactual_part']:+.5f}. The robust estimators remove TWFE's weighting bias but not the "
        f"pilots' differential untreated trend, which parallel trends assumes away: that part is what the "
        f"HonestDiD section bounds.")
    return lines


def honest_lines(m: ModernDID) -> list[str]:
    """HonestDiD in words: the breakdown values and what they mean for the headline estimate."""
    rm, sd = m.honest["relative_magnitude"], m.honest["smoothness"]
    es = m.event_study
    leads = [k for k in es.event_times if k < es.base]
    pre = es.model.coef[[event_term(k) for k in leads]]
    lines = [f"Target: the average effect over the {rm.num_post} post-adoption event times of the study's event "
             f"study (Table 3's controls, base k = {es.base}): **{rm.estimate:.5f}**, 95% CI "
             f"[{rm.original[0]:.5f}, {rm.original[1]:.5f}]. Its leads are "
             + ", ".join(f"{v:+.5f} (k = {k})" for k, v in zip(leads, pre)) + "."]
    b_rm = rm.breakdown_value()
    grid = rm.robust()
    if b_rm is None:
        lines.append(f"Relative magnitudes: the robust CI excludes zero for every Mbar up to {grid['M'].max():g}: "
                     f"post-adoption violations of parallel trends up to {grid['M'].max():g} times the largest "
                     f"pre-adoption one would not overturn a positive effect.")
    else:
        lines.append(f"Relative magnitudes: the robust CI first includes zero at Mbar = {b_rm:g}: a post-adoption "
                     f"violation of parallel trends {b_rm:g} times the largest pre-adoption one would be enough to "
                     f"make the average effect indistinguishable from zero.")
    b_sd = sd.breakdown_value()
    msd = sd.robust()
    top = float(msd["M"].max())
    unit = top / HONEST_SD_MULTIPLES[-1] if top > 0 else float("nan")  # the pre-period's largest curvature
    if b_sd is None:
        lines.append(f"Smoothness: the robust CI (FLCI) excludes zero for every M up to {top:.2g} index points "
                     f"per year² ({HONEST_SD_MULTIPLES[-1]:g} times the largest bend of the pre-adoption trend).")
    else:
        lines.append(f"Smoothness: the robust CI (FLCI) first includes zero at M = {b_sd:.2g} index points per "
                     f"year² ({b_sd / unit:.3g} times the largest bend of the pre-adoption trend, {unit:.2g}): "
                     f"significance survives only if the differential trend changes its slope after adoption by less.")
    lines.append("What this implies for the headline DID: its significance holds only if the pilots' untreated "
                 "path after adoption departs from parallel no more than the breakdown values allow; the "
                 "estimate itself is not corrected by this analysis, only its confidence set widened.")
    return lines


def spatial_lines(m: ModernDID, ground_truth: dict | None) -> list[str]:
    if m.spatial is None:
        return list(m.notes)
    near = m.spatial.near()
    wd = m.spatial.wdid.to_dict()
    eff = m.spatial.durbin.effects.set_index("variable").loc[TREATMENT]
    lines = [f"W·DID (inverse-distance W, row-standardised): direct {wd['direct']:.5f} (SE {wd['direct_se']:.5f}), "
             f"spillover {wd['spillover']:.5f} (SE {wd['spillover_se']:.5f}) per unit of W·DID.",
             f"Spatial Durbin DID (ML, city and year FE, rho = {m.spatial.durbin.coef['rho']:.3f}): direct "
             f"{eff['direct']:.5f}, indirect {eff['indirect']:.5f}, total {eff['total']:.5f}.",
             f"DID on untreated cities within {SPILLOVER_KM} km of a treated city (after its adoption), against "
             f"untreated cities farther away: **{near['coef']:.5f}**, 95% CI [{near['ci_low']:.5f}, "
             f"{near['ci_high']:.5f}]."]
    spill = (ground_truth or {}).get("att", {}).get("spillover")
    if spill and spill.get("resilience_index") is not None:
        true = spill["resilience_index"]
        covers = "covers it" if near["ci_low"] <= true <= near["ci_high"] else "does NOT cover it"
        lines.append(f"Generator ground truth: the mean spillover on the {spill['n_cities']} untreated cities within "
                     f"{spill['radius_km']:g} km is {true:.5f}; the CI {covers}.")
        pilots = (ground_truth.get("policy") or {}).get("n_treated_in_panel")
        if pilots:
            emitted = true * spill["n_cities"] / pilots
            lines.append(f"Summed over those cities, the spillover is about {emitted:.5f} per pilot city, against the "
                         f"spatial Durbin indirect effect of {eff['indirect']:.5f}: the generator has no spatial lag "
                         f"of the outcome, so rho ({m.spatial.durbin.coef['rho']:.3f}) picks up neighbouring cities' "
                         f"correlated paths, and the model's indirect effect is not the planted spillover.")
    return lines
