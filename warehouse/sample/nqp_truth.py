"""The NQP study's ground truth: the NQP index in numpy, the policy's effect on it, and the
mediator path through green patent applications (policy -> green applications -> invention
patents granted -> NQP; dgp.GREEN_TO_INVENTION).

The index follows the warehouse's definition literally (dbt seed index_spec, index ``nqp``: the
11 available indicators, min-max normalised over the panel city-years by direction, entropy
weights, score = sum of w x'), with the factual data's bounds and weights for every scenario, as
the resilience truth does. Scenarios, all from the same random draws:

* factual: the policy and its effect on green applications (and through them on SO2);
* mediator held: the policy everywhere except that green applications stay at their no-policy
  level, so invention grants lose GREEN_TO_INVENTION x (green factual - green without policy) -
  what NQP would be if the pilot zones had not moved green innovation;
* counterfactual: no policy.

With Y(d, m) the index under treatment d and mediator m: natural indirect effect NIE = Y(1, M1)
- Y(1, M0) = factual - mediator held; natural direct effect NDE = mediator held - counterfactual;
they add up to the total effect. ``a`` is the policy's effect on ln(1 + green applications), the
study's LnGIP; ``implied_b`` = NIE / a is the slope a two-step regression would need to recover
the indirect effect as a x b.
"""
from __future__ import annotations

import numpy as np

from warehouse.sample.index import fit_entropy

# (indicator, direction) in index_spec order; robot density is not available.
INDICATORS: tuple[tuple[str, str], ...] = (
    ("innovation_input_share", "positive"),
    ("invention_patents_granted", "positive"),
    ("college_teachers", "positive"),
    ("college_students", "positive"),
    ("energy_intensity", "negative"),
    ("so2_intensity", "negative"),
    ("wastewater_treatment_rate", "positive"),
    ("broadband_users", "positive"),
    ("telecom_volume", "positive"),
    ("mobile_users", "positive"),
    ("digital_patent_applications", "positive"),
)
SIGN = np.array([1.0 if d == "positive" else -1.0 for _, d in INDICATORS])


def indicators(d: dict[str, np.ndarray]) -> np.ndarray:
    """(city, year, indicator) cube of the NQP indicators, in the warehouse's units."""
    cols = [
        (d["edu_expenditure"] + d["sci_expenditure"]) / d["fiscal_expenditure"],
        d["invention_patents_granted"],
        d["college_teachers"],
        d["college_students"],
        d["electricity_use"] / d["gdp"],
        d["so2_industrial"] / d["gdp"],
        d["wastewater_treatment_rate"],
        d["broadband_users"],
        d["telecom_volume"],
        d["mobile_users"],
        d["digital_economy_patent_applications"],
    ]
    return np.stack(cols, axis=-1)


def scores(factual: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """NQP of the factual cube and of each other cube, with the factual bounds and weights.
    A negative indicator is normalised as (max - x) / (max - min), i.e. the positive rule on -x."""
    n, T, K = factual.shape
    model = fit_entropy((factual * SIGN).reshape(-1, K))
    return [(model.normalise((cube * SIGN).reshape(-1, K)) * model.weights).sum(axis=1).reshape(n, T)
            for cube in (factual, *others)]


MEDIATORS = {
    "green_patents": ("log_green_patent_applications", "green_patent_applications",
                      "policy -> green applications (log effect 0.25 x exposure) -> invention grants "
                      "(+ 0.5 per green application) -> NQP"),
    "digital_finance": ("digital_finance", "digital_finance",
                        "policy -> digital finance (log effect 0.10 x exposure) -> telecom volume "
                        "(elasticity 0.5) -> NQP"),
}


def build(rows: np.ndarray, years_panel: slice, factual: dict, counterfactual: dict, cell: np.ndarray,
          mediator_held: dict) -> dict:
    """ATT on NQP and each mediator path, over the treated city-years ``cell`` (panel city x year).

    ``mediator_held[m]`` holds the variables that differ from the factual data when mediator m
    stays at its no-policy level (dgp.simulate computes them before the boundary merge)."""
    def pick(d: dict) -> dict:
        return {v: a[rows][:, years_panel] for v, a in d.items()}

    f, c = pick(factual), pick(counterfactual)
    cubes = [indicators(f), indicators(c)] + [indicators(dict(f, **pick(mediator_held[m]))) for m in MEDIATORS]
    y1, y0, *held = scores(*cubes)
    total = float((y1 - y0)[cell].mean())
    out = {"att": total, "factual_mean": float(y1.mean())}
    for (m, (column, variable, path)), yh in zip(MEDIATORS.items(), held):
        if column.startswith("log_"):
            med_f, med_c = np.log1p(f[variable]), np.log1p(c[variable])
        else:
            med_f, med_c = f[variable], c[variable]
        a = float((med_f - med_c)[cell].mean())
        nie = float((y1 - yh)[cell].mean())
        out[f"mediation_{m}"] = {"mediator": column, "a": a, "nie": nie, "nde": total - nie, "total": total,
                                 "implied_b": nie / a if a else None, "path": path}
    return out
