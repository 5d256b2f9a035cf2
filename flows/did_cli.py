"""``cityres estimate did``: the heterogeneity-robust DID estimators on any panel.

    cityres estimate did --method cs|sa|bjs|did2s|bacon --data TABLE_OR_FILE --outcome Y --unit U
        --time T --cohort G [--control never|notyet] [--covariates a,b] [--vcov CRV1:U]
        [--base-period varying|universal] [--bootstrap N --seed S] --format table|json

``G`` holds each unit's first treated period and 0 (or empty) for never treated. ``--study
resilience`` fills in the resilience index, city, year and adoption year of the analysis panel.
The JSON has ``aggregates`` (``simple``, ``dynamic``, ``group``, ``calendar``: each with ``coef``
and ``se`` and, but for ``simple``, ``rows`` of records), ``att_gt`` for CS, and for Bacon the
2x2 ``comparisons`` and their ``weighted_sum``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.cli_common import HomeOption
from flows.estimate_cli import (
    DataOption,
    FormatOption,
    StudyOption,
    _clean_tree,
    _emit_json,
    _fail,
    _open_data,
    _pick,
    _require_columns,
    _run,
    _split,
    _study,
    console,
    estimate_app,
)

METHODS = ("cs", "sa", "bjs", "did2s", "bacon")
NAMES = {"cs": "Callaway-Sant'Anna", "sa": "Sun-Abraham", "bjs": "Borusyak-Jaravel-Spiess imputation",
         "did2s": "Gardner two-stage DID", "bacon": "Goodman-Bacon decomposition"}


def _cluster(vcov: Optional[str], unit: str) -> str:
    """--vcov CRV1:<col> names the cluster (default: the unit); nothing else applies to these estimators."""
    if vcov is None:
        return unit
    kind, _, col = vcov.partition(":")
    if kind.strip().upper() != "CRV1" or not col.strip() or "+" in col:
        _fail(f"--vcov {vcov!r}: these estimators cluster by one column; give CRV1:<column>")
    return col.strip()


def _estimate(method: str, con, relation: str, o: dict):
    from estimation.engine import bacon, did_cs, did_imputation, did_sa

    args = (con, relation, o["outcome"], o["unit"], o["time"], o["cohort"])
    if method == "cs":
        return did_cs.cs_att_gt(con, relation, outcome=o["outcome"], unit=o["unit"], time=o["time"],
                                cohort=o["cohort"], control=o["control"], covariates=o["covariates"] or None,
                                method=o["cs_method"], base_period=o["base_period"],
                                bootstrap_draws=o["bootstrap"], seed=o["seed"], cluster=o["cluster"])
    if method == "sa":
        return did_sa.sun_abraham(*args, covariates=o["covariates"], cluster=o["cluster"])
    if method == "bjs":
        return did_imputation.did_imputation(*args, covariates=o["covariates"], cluster=o["cluster"])
    if method == "did2s":
        return did_imputation.did2s(*args, covariates=o["covariates"], cluster=o["cluster"])
    return bacon.bacon_decomposition(con, relation, outcome=o["outcome"], unit=o["unit"], time=o["time"],
                                     cohort=o["cohort"])


def _table(method: str, payload: dict) -> str:
    """Plain-text summary: the overall ATT and each aggregation's rows (or Bacon's comparisons)."""
    lines = [f"{NAMES[method]}"]
    if method == "bacon":
        lines.append(f"TWFE coefficient {payload['twfe']:.6f} = weighted sum of the 2x2s {payload['weighted_sum']:.6f}")
        lines.append(f"{'type':28s} {'treated':>8s} {'control':>8s} {'estimate':>11s} {'weight':>8s}")
        for c in payload["comparisons"]:
            lines.append(f"{c['type']:28s} {str(c['treated']):>8s} {str(c['control']):>8s} "
                         f"{c['estimate']:11.6f} {c['weight']:8.4f}")
        return "\n".join(lines)
    agg = payload["aggregates"]
    simple = agg.get("simple") or {}
    lines.append(f"ATT (simple) {simple.get('coef', float('nan')):.6f}  SE {simple.get('se', float('nan')):.6f}")
    for kind, key in (("dynamic", "event_time"), ("group", "group"), ("calendar", "time")):
        part = agg.get(kind)
        if not part or not part.get("rows"):
            continue
        lines.append(f"\n{kind}: overall {part.get('coef') or float('nan'):.6f} (SE {part.get('se') or float('nan'):.6f})")
        lines.append(f"{key:>12s} {'coef':>11s} {'se':>10s}")
        for r in part["rows"]:
            k = r.get(key, r.get("cohort"))
            coef = r.get("coef")
            se = r.get("se")
            lines.append(f"{str(k):>12s} {coef if coef is not None else float('nan'):11.6f} "
                         f"{se if se is not None else float('nan'):10.6f}")
    return "\n".join(lines)


@estimate_app.command("did")
def estimate_did(
    method: str = typer.Option(..., "--method", help="cs | sa | bjs | did2s | bacon"),
    data: Optional[str] = DataOption,
    outcome: Optional[str] = typer.Option(None, "--outcome"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    time: Optional[str] = typer.Option(None, "--time"),
    cohort: Optional[str] = typer.Option(None, "--cohort", help="each unit's first treated period; 0 or empty: "
                                         "never treated (default with --study: adoption_year)"),
    control: str = typer.Option("never", "--control", help="cs: never | notyet"),
    covariates: Optional[str] = typer.Option(None, "--covariates", help="comma-separated (cs: time-invariant, "
                                             "doubly robust; sa, bjs, did2s: time-varying controls)"),
    cs_method: str = typer.Option("dr", "--cs-method", help="cs with covariates: dr | reg | ipw"),
    base_period: str = typer.Option("varying", "--base-period", help="cs: varying | universal"),
    bootstrap: int = typer.Option(999, "--bootstrap", help="cs: multiplier bootstrap draws (0: none)"),
    seed: int = typer.Option(20240601, "--seed", help="cs: seed of the multiplier bootstrap"),
    vcov: Optional[str] = typer.Option(None, "--vcov", help="CRV1:<column> (default: CRV1 by the unit)"),
    study: Optional[str] = StudyOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Heterogeneity-robust DID for staggered adoption: CS, SA, BJS, did2s, or the Bacon decomposition."""
    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    if control not in ("never", "notyet"):
        _fail(f"--control must be never or notyet; got {control!r}")
    sd = _study(study)
    data = _pick(data, sd, "data", "--data")
    outcome = _pick(outcome, sd, "outcome", "--outcome")
    unit, time = _pick(unit, sd, "unit", "--unit"), _pick(time, sd, "time", "--time")
    if cohort is None:
        if sd is None:
            _fail("--cohort is required (or name a study with --study resilience|nqp)")
        cohort = "adoption_year"
    options = {"outcome": outcome, "unit": unit, "time": time, "cohort": cohort, "control": control,
               "covariates": _split(covariates), "cs_method": cs_method, "base_period": base_period,
               "bootstrap": bootstrap, "seed": seed, "cluster": _cluster(vcov, unit)}
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, [outcome, unit, time, cohort, *options["covariates"], options["cluster"]])
        result = _run(lambda: _estimate(method, con, relation, options))
    raw = _clean_tree(result.to_dict())
    payload = {"method": method, "estimator": NAMES[method], **{k: v for k, v in raw.items() if k != "method"}}
    if fmt == "json":
        _emit_json(payload)
    else:
        console.print(_table(method, payload), markup=False, highlight=False)


@estimate_app.command("dml")
def estimate_dml(
    data: Optional[str] = DataOption,
    outcome: Optional[str] = typer.Option(None, "--outcome"),
    treatment: Optional[str] = typer.Option(None, "--treatment", help="the 0/1 DID column"),
    controls: Optional[str] = typer.Option(None, "--controls", help="comma-separated (default with --study: the "
                                           "study's controls)"),
    unit: Optional[str] = typer.Option(None, "--unit"),
    time: Optional[str] = typer.Option(None, "--time"),
    learner: str = typer.Option("lasso", "--learner", help="lasso | random_forest | gradient_boosting"),
    folds: int = typer.Option(5, "--folds", help="cross-fitting folds, by unit"),
    repetitions: int = typer.Option(1, "--repetitions", help="repeated cross-fitting (median aggregation)"),
    seed: int = typer.Option(20240601, "--seed"),
    study: Optional[str] = StudyOption,
    fmt: str = FormatOption,
    home: Optional[Path] = HomeOption,
) -> None:
    """Double/debiased ML DID: unit and time effects partialled out, cross-fitting by unit (docs/methods.md § 30)."""
    from estimation.engine.dml import dml_did

    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    sd = _study(study)
    data = _pick(data, sd, "data", "--data")
    outcome = _pick(outcome, sd, "outcome", "--outcome")
    treatment = _pick(treatment, sd, "treatment", "--treatment")
    unit, time = _pick(unit, sd, "unit", "--unit"), _pick(time, sd, "time", "--time")
    ctrl = _split(controls) if controls is not None else list(sd.controls if sd else [])
    if not ctrl:
        _fail("--controls is required (the learners predict the outcome and the treatment from them)")
    with _open_data(data, home) as (con, relation):
        _require_columns(con, relation, [outcome, treatment, unit, time, *ctrl])
        result = _run(lambda: dml_did(con, relation, outcome=outcome, treatment=treatment, controls=ctrl, unit=unit,
                                      time=time, learner=learner, n_folds=folds, n_rep=repetitions, seed=seed))
    payload = _clean_tree(result.to_dict())
    if fmt == "json":
        _emit_json(payload)
    else:
        console.print(f"DML DID ({learner}, {folds} folds by {unit}, {repetitions} repetition(s)): "
                      f"{treatment} = {result.coef:.6f}  SE {result.se:.6f}  "
                      f"95% CI [{result.ci[0]:.6f}, {result.ci[1]:.6f}]  p = {result.pvalue:.4g}  "
                      f"(N = {result.nobs}, {result.n_units} units)", markup=False, highlight=False)
