"""The staggered design's truth: ATT(g,t), its four aggregations, and what two-way FE DID targets.

Everything is computed from the latent effect on the resilience index, ``diff`` = factual minus
counterfactual index (panel city x panel year), so it is exact, not estimated:

* ``att_gt``: the mean of diff over the cities of cohort g (first treated year g) in year t, for
  every year of the panel (0 before g by construction);
* the aggregations of Callaway & Sant'Anna (2021, section 3.1.1), with cohort sizes n_g as the
  weights of the cohorts (in a balanced panel these are the weights their estimator uses):
  ``simple`` = Σ_g Σ_{t≥g} n_g ATT(g,t) / Σ_g Σ_{t≥g} n_g (the mean over treated city-years),
  ``dynamic`` θ(e) = Σ_g n_g ATT(g,g+e) / Σ_g n_g over the cohorts observed at e, overall = the
  mean of θ(e) over e ≥ 0; ``group`` θ(g) = mean of ATT(g,t) over t ≥ g, overall = Σ n_g θ(g) /
  Σ n_g; ``calendar`` θ(t) = Σ_{g≤t} n_g ATT(g,t) / Σ_{g≤t} n_g, overall = mean of θ(t);
* ``twfe``: the two-way FE DID coefficient on the complete latent panel, split exactly into
  Σ w_it τ_it (the effects as TWFE weights them, w = the two-way-demeaned treatment over
  Σ D̃ D; de Chaisemartin & D'Haultfœuille 2020) and Σ w_it Y0_it (what it picks up from the
  untreated paths). The weighting bias is Σ w τ − simple ATT; ``negative_weights`` counts the
  treated city-years TWFE weights negatively;
* ``cs_never``: Callaway-Sant'Anna's unconditional estimator with never-treated controls and
  its simple aggregation, on the complete latent panel - ATT(g,t) = mean over cohort g of
  (Y_t − Y_{g−1}) minus the same mean over never-treated cities - which is linear in Y and so
  splits exactly into its value on the effects (the ATT, less the spillover the never-treated
  neighbours of pilot cities received) and on the untreated paths (the pilots' differential
  trend, which no estimator that assumes parallel trends removes).
"""
from __future__ import annotations

import numpy as np

from warehouse.sample.iv_truth import two_way_within


def build(diff: np.ndarray, y_counterfactual: np.ndarray, adoption: np.ndarray, treated: np.ndarray,
          years: np.ndarray) -> dict:
    years = np.asarray(years)
    cohorts = sorted({int(a) for a in adoption[treated]})
    n_g = {g: int((treated & (adoption == g)).sum()) for g in cohorts}
    att = {(g, int(t)): float(diff[treated & (adoption == g), j].mean()) for g in cohorts for j, t in enumerate(years)}
    post = [(g, int(t)) for g in cohorts for t in years if t >= g]

    simple = sum(n_g[g] * att[g, t] for g, t in post) / sum(n_g[g] for g, _ in post)
    events = sorted({t - g for g in cohorts for t in map(int, years)})
    dynamic_rows = []
    for e in events:
        obs = [g for g in cohorts if g + e in set(map(int, years))]
        w = sum(n_g[g] for g in obs)
        dynamic_rows.append({"event_time": e, "att": sum(n_g[g] * att[g, g + e] for g in obs) / w,
                             "cohorts": obs})
    group_rows = [{"group": g, "att": float(np.mean([att[g, t] for gg, t in post if gg == g])), "n_cities": n_g[g]}
                  for g in cohorts]
    calendar_rows = []
    for t in map(int, years):
        obs = [g for g in cohorts if g <= t]
        if obs:
            w = sum(n_g[g] for g in obs)
            calendar_rows.append({"time": t, "att": sum(n_g[g] * att[g, t] for g in obs) / w})

    D = (treated[:, None] & (years[None, :] >= adoption[:, None])).astype(float)
    Dt = two_way_within(D)
    denom = float((Dt * D).sum())
    w = Dt / denom
    effect_part = float((w * diff).sum())
    counterfactual_part = float((w * y_counterfactual).sum())
    cells = D > 0
    cs_effect = _cs_never_simple(diff, adoption, treated, years, cohorts, n_g)
    cs_counterfactual = _cs_never_simple(y_counterfactual, adoption, treated, years, cohorts, n_g)
    return {
        "cohorts": {str(g): n_g[g] for g in cohorts},
        "att_gt": [{"group": g, "time": t, "att": att[g, t], "event_time": t - g} for g in cohorts for t in map(int, years)],
        "aggregates": {
            "simple": simple,
            "dynamic": {"overall": float(np.mean([r["att"] for r in dynamic_rows if r["event_time"] >= 0])),
                        "rows": dynamic_rows},
            "group": {"overall": sum(n_g[r["group"]] * r["att"] for r in group_rows) / sum(n_g.values()),
                      "rows": group_rows},
            "calendar": {"overall": float(np.mean([r["att"] for r in calendar_rows])), "rows": calendar_rows},
        },
        "twfe": {
            "coefficient_on_latent": effect_part + counterfactual_part,
            "effect_part": effect_part,
            "counterfactual_part": counterfactual_part,
            "weighting_bias": effect_part - simple,
            "negative_weights": int((w[cells] < 0).sum()),
            "negative_weight_sum": float(w[cells & (w < 0)].sum()),
            "treated_city_years": int(cells.sum()),
        },
        "cs_never": {
            "coefficient_on_latent": cs_effect + cs_counterfactual,
            "effect_part": cs_effect,
            "counterfactual_part": cs_counterfactual,
        },
    }


def _cs_never_simple(Y: np.ndarray, adoption: np.ndarray, treated: np.ndarray, years: np.ndarray,
                     cohorts: list[int], n_g: dict[int, int]) -> float:
    """CS simple ATT with never-treated controls and base g-1, applied to the array Y (city x year)."""
    never = ~treated
    col = {int(t): j for j, t in enumerate(years)}
    num = den = 0.0
    for g in cohorts:
        members = treated & (adoption == g)
        base = col[g - 1]
        for t in years[years >= g]:
            j = col[int(t)]
            att = (Y[members, j] - Y[members, base]).mean() - (Y[never, j] - Y[never, base]).mean()
            num += n_g[g] * att
            den += n_g[g]
    return float(num / den)
