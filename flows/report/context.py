"""ONE context dict for both templates (report.md.j2 and report.html.j2).

Everything a reader sees is decided here: which sections exist and in which order, their
titles (built from what was run: the event study's window from its EventStudyResult, the
placebo's draws from its PlaceboResult), and every number, already formatted, so that the
Markdown and the HTML show the same sections with the same numbers. The templates only lay
the context out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flows.report.figures import Figure

NUMBER_WORDS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight",
                9: "Nine", 10: "Ten", 11: "Eleven", 12: "Twelve", 15: "Fifteen", 20: "Twenty"}
MARKS = {"ok": "✔", "fail": "✖", "warn": "⚠", "info": "•"}
FILE_COLUMNS = ["source", "file_name", "sha256", "rows", "status", "replaces_earlier"]
PERMUTATIONS = {"adoption": "random adoption assignments", "units": "random assignments of the treated units"}


# How links and the contents line name a section (its heading is the full title).
SHORT_TITLES = {"summary": "Summary", "index": "Index", "top-cities": "Top cities", "baseline": "Table 3",
                "event-study": "Event study", "placebo": "Placebo", "nqp": "NQP Table 3", "table2": "Table 2", "table4": "Table 4 (2SLS)", "robustness": "Robustness", "nqp-robustness": "NQP robustness", "spec-curve": "Specification curve", "table5": "Table 5", "table6": "Table 6", "table7": "Table 7",
                "nqp-table5": "NQP Table 5", "nqp-res-table3": "NQP → RES Table 3", "nqp-res-table5": "NQP → RES Table 5",
                "nqp-res-table7": "NQP → RES Table 7", "nqp-table6": "NQP Table 6", "nqp-res-table6": "NQP → RES Table 6", "nqp-res-iv": "NQP → RES 2SLS",
                "treated-control": "Pilot vs other cities", "files": "Files", "dbt": "dbt build",
                "changes": "Changes", "imputed": "Imputed cells", "names": "Names", "expectations": "Expectations",
                "revisions": "Revisions", "where": "Paths"}


@dataclass
class Section:
    id: str
    title: str
    group: str  # summary | results | details
    figures: list[Figure] = field(default_factory=list)

    @property
    def short(self) -> str:
        return SHORT_TITLES.get(self.id, self.title)


def k_label(k: int) -> str:
    """An event time as printed: −4, 0, 7 (a true minus sign)."""
    return f"−{-k}" if k < 0 else str(k)


def event_study_title(leads: int, lags: int, base: int) -> str:
    return f"Event study (parallel trends; k = {k_label(-leads)}…{k_label(lags)}, base {k_label(base)})"


def placebo_title(draws: int, permute: str) -> str:
    return f"Placebo test ({draws} {PERMUTATIONS.get(permute, f'random assignments ({permute})')})"


def top_title(n: int, year: int | None) -> str:
    word = NUMBER_WORDS.get(n, str(n))
    return f"{word} most resilient cities, latest year" + (f" ({year})" if year is not None else "")


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _item(text: str, href: str | None = None, mark: str = "info", label: str = "") -> dict:
    return {"text": text, "href": href, "mark": mark, "symbol": MARKS[mark], "label": label, "also": None}


def title_of(summary) -> str:
    kind = {"dry-run": "dry run", "validate": "validation of the published warehouse"}.get(summary.mode, "refresh")
    return f"cityres {kind} {summary.vintage}"


# ---------------------------------------------------------------- results of the studies

def baseline_results(estimation, ground_truth: dict | None) -> dict:
    from estimation.studies.common import table3
    from estimation.studies.resilience import truth_comparison

    specs, results = estimation.baseline
    term = specs[-1].regressors[0]
    last = results[-1]
    low, high = (float(v) for v in last.conf_int.loc[term])
    p = float(last.tidy().set_index("term").loc[term, "p"])
    truth = truth_comparison(results, ground_truth, estimation.panel_years) if ground_truth is not None else []
    compared = len(truth) == 2  # the truth and the estimate; one line says why they were not compared
    wild = getattr(estimation, "wild_bootstrap", None)
    inference = []
    if wild is not None:
        wild_p = (f"p = {wild.p_value:.4f}" if wild.p_value > 0
                  else f"p < {1 / wild.draws:.4f} (no draw as extreme)")
        inference.append(f"Column ({len(results)}), {term}: CRV1 p = {p:.4f}, 95% CI [{low:.5f}, {high:.5f}]; wild "
                         f"cluster bootstrap (restricted, {wild.weights_type.capitalize()} weights, {wild.draws:,} "
                         f"draws, by city) {wild_p}, 95% CI by test inversion [{wild.ci[0]:.5f}, {wild.ci[1]:.5f}].")
    return {
        "truth_att": _num(ground_truth["att"]["resilience_index"], ".5f") if compared else None,
        "covered": compared and truth[1].rstrip().endswith("covers the truth."),
        "markdown": table3(specs, results, "markdown"), "html": table3(specs, results, "html"),
        "truth": truth, "inference": inference, "term": term, "column": len(results),
        "coef": _num(float(last.coef[term]), ".5f"), "ci_low": _num(low, ".5f"), "ci_high": _num(high, ".5f"),
        "p": _num(p, ".4f"), "outcome": specs[-1].outcome,
    }


def event_study_results(estimation, ground_truth: dict | None) -> dict:
    from estimation.studies.resilience import event_study_truth

    es = estimation.event_study
    truth_rows = []
    if ground_truth and tuple(estimation.panel_years) == tuple(ground_truth["years"]["panel"]):
        truth_rows = event_study_truth(es, ground_truth)
    pretrend = None
    if es.pretrend is not None:
        pt = es.pretrend
        leads = sorted(int(t.split("::")[-1]) for t in pt.terms) if getattr(pt, "terms", None) else []
        pretrend = {"df1": pt.df1, "df2": pt.df2, "f": _num(pt.f, ".3f"), "p": _num(pt.p_f, ".4f"),
                    "leads": ", ".join(k_label(k) for k in leads)}
    return {"title": event_study_title(es.leads, es.lags, es.base), "markdown": es.table("markdown"),
            "html": es.table("html"), "truth": truth_rows, "pretrend": pretrend,
            "binned": es.bin_endpoints, "base": k_label(es.base)}


def placebo_results(estimation) -> dict:
    placebo = estimation.placebo
    s = placebo.summary()
    return {
        "title": placebo_title(placebo.n_draws, placebo.permute), "draws": s["draws"], "valid_draws": s["valid_draws"],
        "coef": _num(s["coef"], ".5f"), "p": _num(s["p"], ".4f"),
        "placebo_mean": _num(s["placebo_mean"], ".3g"), "placebo_sd": _num(s["placebo_sd"], ".3g"),
        "share_p_below_0_1": _num(s["share_p_below_0.1"], ".3f"),
        "ri_p_value": _num(s["ri_p_value"], ".3f"), "ri_p_value_plus1": _num(s["ri_p_value_plus1"], ".4f"),
        "seed": s["seed"],
    }


def table2_results(estimation) -> dict | None:
    if estimation.table2 is None:
        return None
    return {"title": "Descriptive statistics and VIFs (the resilience study's Table 2)",
            "markdown": estimation.table2.render("markdown"), "html": estimation.table2.render("html")}


def table4_results(estimation, ground_truth: dict | None = None) -> dict | None:
    if estimation.table4_iv is None:
        return None
    from estimation.studies.resilience import iv_truth_comparison, psm_truth_comparison

    truth = iv_truth_comparison(estimation.table4_iv, ground_truth, estimation.panel_years) if ground_truth else []
    if ground_truth and estimation.table4_psm is not None:
        truth += psm_truth_comparison(estimation.table4_psm, ground_truth, estimation.panel_years)
    iv = estimation.table4_iv.second_stage
    d = iv.diagnostics
    weak = d.get("kp_rk_wald_f", d["cragg_donald_f"]) < (d.get("stock_yogo_10pct") or 0)
    verdict = ("the instrument is weak by the Stock-Yogo rule (rk Wald F below the 10% maximal-size value)"
               if weak else "the rk Wald F exceeds the Stock-Yogo value for 10% maximal size")
    return {"title": "Endogeneity: PSM-DID and 2SLS with the 1984-telephones instrument (the resilience "
                     "study's Table 4)",
            "markdown": estimation.table4_iv.render("markdown", psm=estimation.table4_psm),
            "html": estimation.table4_iv.render("html", psm=estimation.table4_psm),
            "balance_markdown": estimation.table4_psm.render_balance("markdown") if estimation.table4_psm else "",
            "balance_html": estimation.table4_psm.render_balance("html") if estimation.table4_psm else "",
            "verdict": f"Instrument: 1984 fixed telephones per 100 people x the previous year's national internet "
                       f"users; {verdict}.",
            "truth": truth,
            "note": ("In the synthetic sample the telephones depend on pilot status and an independent draw only, "
                     "so the instrument is excluded from the outcome by construction; it still shares the pilots' "
                     "own untreated trend with the DID." if truth else "")}


def nqp_robustness_results(estimation) -> dict | None:
    rob = getattr(estimation, "nqp_robustness", None)
    if rob is None:
        return None
    balance = {m: est.render_balance("markdown") for m, est in rob.psm.items()}
    return {"title": "The NQP study's robustness table: PSM-DID (nearest neighbour, kernel), winsorising, 2014-2019",
            "markdown": rob.render("markdown"), "html": rob.render("html"),
            "balance_markdown": balance, "balance_html": {m: est.render_balance("html") for m, est in rob.psm.items()},
            "note": "Outcome: the NQP index. PSM-DID: per-year logit on the NQP study's controls; nearest neighbour "
                    "1:1 with replacement within a 0.05 caliper, or Epanechnikov kernel with bandwidth 0.06 "
                    "(psmatch2's default), the DID weighted by the matching weights; common support. Winsorised: "
                    "NQP and every control clipped at the 1st and 99th percentiles."}


def heterogeneity_results(estimation, ground_truth: dict | None) -> dict | None:
    from estimation.studies.common import estimate_ci
    from estimation.studies.resilience_heterogeneity import truth_rows

    het = getattr(estimation, "heterogeneity", None)
    if het is None:
        return None
    mech, rows = [], []
    if ground_truth and tuple(estimation.panel_years) == tuple(ground_truth["years"]["panel"]):
        rows = truth_rows(het, ground_truth)
        for m in het.table(5):
            true = ground_truth["att"]["mechanisms"].get(m.result.depvar)
            coef, low, high = estimate_ci(m.result)
            if true is not None:
                mech.append(f"{m.label}: estimate **{coef:.5f}**, 95% CI [{low:.5f}, "
                            f"{high:.5f}]; true ATT {true:.5f} — " + ("covered." if low <= true <= high else
                                                                        "NOT covered."))
    return {
        "table5": {"title": "Mechanisms (the resilience study's Table 5)", "markdown": het.render(5, "markdown"),
                   "html": het.render(5, "html"), "truth": mech},
        "table6": {"title": "City size (the resilience study's Table 6)", "markdown": het.render(6, "markdown"),
                   "html": het.render(6, "html"), "truth": [r for r in rows if r["table"] == "table6"]},
        "table7": {"title": "Institutions: DIG and IPP (the resilience study's Table 7)",
                   "markdown": het.render(7, "markdown"), "html": het.render(7, "html"),
                   "truth": [r for r in rows if r["table"].startswith("table7")]},
    }


def nqp_more_results(estimation, ground_truth: dict | None = None) -> dict | None:
    """The NQP study's Table 5 and the NQP -> resilience study's Tables 3, 5 and 7."""
    med, nr = getattr(estimation, "nqp_table5", None), getattr(estimation, "nqp_resilience_tables", None)
    out = {}
    no_truth = ("The synthetic sample plants no effect of these variables on one another beyond the pilot "
                "zones' own effects, so no ground truth is stated for them.")
    if med is not None:
        missing = (f" Not estimated, no data delivered: {', '.join(med.missing)} (source digital_finance: the "
                   "Peking University index's city table).") if med.missing else ""
        from estimation.studies.nqp import mediation_truth_lines

        same_years = ground_truth and tuple(estimation.panel_years) == tuple(ground_truth["years"]["panel"])
        truth = mediation_truth_lines(med, ground_truth) if same_years else []
        out["nqp-table5"] = {"title": "The NQP study's Table 5: two-step mediation, with the indirect effect tested",
                             "markdown": med.render("markdown"), "html": med.render("html"), "truth": truth,
                             "note": "Outcome NQP, treatment DID, the NQP study's controls, city and year FE, CRV1 "
                                     "by city; a·b with the Sobel test and a 999-draw cluster bootstrap by city."
                                     + missing}
    split_note = (" Beneath each pair: the difference of the two coefficients, its p-value in the fully interacted "
                  "pooled model, and Fisher's permutation p-value (group labels permuted across cities) - the "
                  "test the study's claim of a stronger effect in one group needs.")
    t6 = getattr(estimation, "nqp_table6", None)
    if t6 is not None:
        out["nqp-table6"] = {"title": "The NQP study's Table 6: key vs ordinary and resource-based vs other cities",
                             "markdown": t6.render("markdown"), "html": t6.render("html"),
                             "note": "Outcome NQP; Table 3 column (4) on each group." + split_note + " " + no_truth}
    if nr is not None and nr.table6 is not None:
        out["nqp-res-table6"] = {"title": "The NQP → resilience study's Table 6: S&T spending, Hu line, resource base",
                                 "markdown": nr.table6.render("markdown"), "html": nr.table6.render("html"),
                                 "note": "S&T spending: a city's mean S&T share of the budget over the panel, "
                                         "above or below the median city." + split_note + " " + no_truth}
    if nr is not None:
        for n, cols, title in ((3, nr.table3, "Table 3: NQP on economic resilience, controls added in turn"),
                               (5, nr.table5, "Table 5: robustness"),
                               (7, nr.table7, "Table 7: mechanisms")):
            body_md, body_html = cols.render("markdown"), cols.render("html")
            if n == 7:
                body_md += "\n\n" + "\n\n".join(f"**Mediation through {m}**\n\n" + r.render("markdown")
                                                    for m, r in nr.mediation.items())
                body_html += "".join(f"<p><strong>Mediation through {m}</strong></p>" + r.render("html")
                                     for m, r in nr.mediation.items())
            out[f"nqp-res-table{n}"] = {"title": f"The NQP → resilience study's {title}", "markdown": body_md,
                                        "html": body_html,
                                        "note": "Outcome: the Martin-Sunley sensitivity index (ER); NQP: the "
                                                "hierarchical index. " + no_truth}
    for entry in out.values():
        entry.setdefault("truth", [])
    return out or None


def spec_curve_results(estimation) -> dict | None:
    curve = getattr(estimation, "spec_curve", None)
    if curve is None:
        return None
    return {"title": "Specification curve over the resilience index: Table 3 column (4) under 24 ways to build it",
            "summary": curve.summary_line(), "markdown": curve.render("markdown"), "html": curve.render("html")}


def nqp_resilience_iv_results(estimation) -> dict | None:
    iv = getattr(estimation, "nqp_resilience_iv", None)
    if iv is None:
        return None
    d = iv.second_stage.diagnostics
    weak = d.get("kp_rk_wald_f", d["cragg_donald_f"]) < (d.get("stock_yogo_10pct") or 0)
    return {"title": "The NQP → resilience study's Table 4: 2SLS with last year's NQP as the instrument",
            "markdown": iv.render("markdown"), "html": iv.render("html"),
            "note": ("Outcome: the Martin-Sunley sensitivity index; NQP: the hierarchical index. Controls: ln GDP "
                     "per capita, S&T spending share, ln(1 + FDI), deposits and loans / GDP; the study's library "
                     "books per 10,000 people is not in the warehouse. The rk Wald F "
                     + ("is below" if weak else "exceeds") + " the Stock-Yogo 10% value. A lagged regressor is "
                     "a valid instrument only if last year's NQP affects this year's resilience through this "
                     "year's NQP alone, which persistent shocks to either make doubtful.")}


def modern_did_results(estimation, ground_truth: dict | None) -> dict:
    """Three sections: the robust DID estimators, HonestDiD, and the spatial DID."""
    from estimation.studies import modern_did as md

    m = getattr(estimation, "modern_did", None)
    if m is None:
        return {}
    design = ("staggered adoption, cohorts " + ", ".join(f"{g} ({n} cities)" for g, n in m.cohorts.items())
              if m.staggered else f"one adoption cohort ({next(iter(m.cohorts), '?')})")
    truth = md.truth_lines(m, ground_truth, estimation.panel_years) if ground_truth else []
    note = (f"Outcome: the resilience index, {m.n_units} cities observed every year; {design}. The robust "
            "estimators run without controls (as the two-way FE row here); the DML DID uses Table 3's controls. "
            "Bacon rows: the total weight of each type of 2x2 comparison and their weighted mean. "
            "Every estimator, its formula and the reference it was checked against: docs/methods.md.")
    robust = {"title": "Heterogeneity-robust DID: Callaway-Sant'Anna, Sun-Abraham, BJS imputation, did2s, "
                       "Goodman-Bacon, DML",
              "markdown": m.render("markdown"), "html": m.render("html"), "truth": truth, "note": note}
    pre = m.bjs_pretrend.wald
    robust["truth"] = truth + [f"BJS pre-trend test on untreated city-years (leads k = -1..-3): F({pre.df1:g}, "
                               f"{pre.df2:g}) = {pre.f:.3f}, p = {pre.p_f:.4f}."]
    honest = {"title": "Sensitivity to parallel trends (HonestDiD, Rambachan-Roth)",
              "markdown": "", "html": "", "truth": md.honest_lines(m),
              "note": "Relative magnitudes: conditional (ARP) robust CIs by Mbar; smoothness: FLCI by M. "
                      "Checked against moderndid's honest_did (docs/methods.md)."}
    spatial = {"title": "Spatial DID: spillovers to neighbouring cities",
               "markdown": "", "html": "", "truth": md.spatial_lines(m, ground_truth),
               "note": f"Weights: main.spatial_weights ({md.WEIGHTS_SCHEME}). The distance-band DID compares "
                       "untreated cities in each band of distance to the nearest treated city with untreated "
                       "cities beyond the last band, after adoption."}
    return {"modern-did": robust, "honest-did": honest, "spatial-did": spatial}


def robustness_results(estimation) -> dict | None:
    if estimation.robustness is None:
        return None
    return {"title": "Robustness: Table 3 column (4) under each check",
            "markdown": estimation.robustness.render("markdown"), "html": estimation.robustness.render("html"),
            "note": "Winsorised: every continuous variable clipped at its 1st and 99th percentiles; the "
                    "municipalities are Beijing, Tianjin, Shanghai and Chongqing; Martin-Sunley: the sensitivity "
                    "index of the NQP-resilience study's eq. (1) as the outcome."}


def nqp_results(estimation, ground_truth: dict | None = None) -> dict:
    from estimation.studies.common import table3
    from estimation.studies.nqp import truth_lines

    specs, results = estimation.nqp_baseline
    return {"title": f"The NQP study's Table 3 (outcome: {specs[0].outcome})",
            "markdown": table3(specs, results, "markdown", adj_r2=True),
            "html": table3(specs, results, "html", adj_r2=True),
            "truth": truth_lines(specs, results, ground_truth, estimation.panel_years) if ground_truth else []}


# ---------------------------------------------------------------- the summary lines

def _changed(summary, facts: dict, files: list[dict]) -> list[dict]:
    if summary.mode == "validate":
        return [_item("Validation of the published warehouse: nothing was loaded.")]
    lines = []
    loaded = len(summary.files_loaded)
    if facts.get("first_load"):
        lines.append(_item(f"First load: every city-year is new ({loaded} file(s) loaded).", "#changes"))
    changes = facts.get("changes")
    if changes:
        if changes["new_years"]:
            lines.append(_item("New years: " + ", ".join(map(str, changes["new_years"])) + ".", "#changes"))
        if changes["new_cities"]:
            lines.append(_item(f"New cities: {len(changes['new_cities'])}.", "#changes"))
        changed = sum(r["changed_city_years"] for r in changes["by_year"])
        if changed:
            years = [str(r["year"]) for r in changes["by_year"] if r["changed_city_years"]]
            lines.append(_item(f"City-years with changed values: {changed} (in {', '.join(years)}).", "#changes"))
        if not changes["by_year"]:
            lines.append(_item("No city-year differs from the published vintage.", "#changes"))
    corrected = [f["file_name"] for f in files if f.get("replaces_earlier")]
    if corrected:
        lines.append(_item(f"Corrected files (replacing an earlier delivery): {', '.join(corrected)}.", "#files"))
    revisions = facts.get("revisions")
    if revisions:
        text = f"Revised index values: {revisions['revised']} of {revisions['compared']} published city-year values"
        if revisions["revised"]:
            text += f" (largest |Δ| {revisions['max_abs']:.3g})"
        others = [f"{r['index']} {r['revised']} of {r['compared']}" for r in revisions.get("by_index", [])
                  if not r["index"].startswith("resilience_index.")]
        if others:
            text += "; " + ", ".join(others)
        lines.append(_item(text + ".", "#revisions"))
    if not lines and not loaded:
        lines.append(_item("Nothing new was loaded.", "#files"))
    for error in facts.get("errors") or []:
        lines.append(_item(f"Not compared with the published vintage: {error}", "#changes", "warn"))
    return lines


def _headline(summary, baseline: dict | None, event: dict | None, placebo: dict | None) -> list[dict]:
    if baseline is None:
        reason = {"dry-run": "a dry run does not estimate", "validate": "a validation does not estimate"}.get(
            summary.mode, "the load was not published" if summary.status != "published" else "no estimation ran")
        return [_item(f"No estimates: {reason}.")]
    lines = [_item(f"DID, Table 3 column ({baseline['column']}) on {baseline['outcome']}: {baseline['coef']}, "
                   f"95% CI [{baseline['ci_low']}, {baseline['ci_high']}] (p = {baseline['p']}).", "#baseline",
                   label="did")]
    if baseline["truth_att"] is not None:
        inside = "inside" if baseline["covered"] else "OUTSIDE"
        lines.append(_item(f"Synthetic ground truth: the true ATT {baseline['truth_att']} is {inside} that 95% CI.",
                           "#baseline", "ok" if baseline["covered"] else "fail", label="truth"))
    elif baseline["truth"]:
        lines.append(_item(baseline["truth"][0].replace("**", ""), "#baseline", label="truth"))
    if event and event["pretrend"]:
        pt = event["pretrend"]
        lines.append(_item(f"Pre-trend test (leads k = {pt['leads']} jointly 0): F({pt['df1']}, {pt['df2']}) = "
                           f"{pt['f']}, p = {pt['p']}.", "#event-study", label="pretrend"))
    if placebo:
        lines.append(_item(f"Placebo randomisation p-value: {placebo['ri_p_value']} ({placebo['ri_p_value_plus1']} "
                           f"counting the real assignment; {placebo['draws']} draws).", "#placebo", label="placebo"))
    return lines


def _checks(summary, facts: dict, critical: list, warnings: list) -> list[dict]:
    lines = []
    if summary.mode != "validate":
        failed = len(summary.files_failed)
        withdrawn = len(getattr(summary, "files_withdrawn", []))
        lines.append(_item(f"Files: {len(summary.files_loaded)} loaded, {summary.files_skipped} already loaded, "
                           + (f"{withdrawn} withdrawn, " if withdrawn else "")
                           + f"{failed} failed.", "#files", "fail" if failed else "ok", "files"))
        if not dbt_ran(summary):
            lines.append(_item("dbt build: not run.", "#dbt", "info", "dbt"))
        else:
            n_fail, n_warn = len(summary.dbt_failures), len(summary.dbt_warnings)
            mark = "fail" if n_fail else ("warn" if n_warn else "ok")
            lines.append(_item(f"dbt build: {n_fail} failure(s), {n_warn} warning(s).", "#dbt", mark, "dbt"))
    mark = "fail" if critical else ("warn" if warnings else "ok")
    lines.append(_item(f"Expectations: {summary.expectations_passed} passed, {len(summary.expectations_failed)} failed "
                       f"({len(critical)} critical, {len(warnings)} warning).", "#expectations", mark, "expectations"))
    if summary.gx_docs:
        lines[-1]["also"] = {"href": summary.gx_docs, "text": "GX Data Docs"}
    imputed = facts.get("imputed")
    coverage = facts.get("coverage")
    if imputed:
        share = f" ({100 * coverage['imputed_share']:.3f} % of panel cells)" if coverage else ""
        lines.append(_item(f"Imputed cells: {imputed['total']} filled by interpolation{share}.", "#imputed",
                           label="imputed"))
    if coverage and coverage.get("resolved_names"):
        names = sum(r["names"] for r in coverage["resolved_names"])
        province = sum(r["needed_province"] or 0 for r in coverage["resolved_names"])
        kinds = len({r["match_type"] for r in coverage["resolved_names"]})
        lines.append(_item(f"City names: {names} delivered names resolved by {kinds} kind(s) of match, "
                           f"{province} needed the province.", "#names", label="names"))
    return lines


def dbt_ran(summary) -> bool:
    return "dbt build" in summary.step_seconds or bool(summary.dbt_failures or summary.dbt_warnings)


# ---------------------------------------------------------------- the context

def build_context(summary, facts: dict, *, folder: Path, estimation=None, ground_truth: dict | None = None,
                  top_cities: list[dict] | None = None, latest_year: int | None = None,
                  index_years: tuple[int, int] | None = None, index_figures: list[Figure] | None = None,
                  study_figures: dict[str, Figure] | None = None, figure_notes: list[str] | None = None,
                  limit: int = 5) -> dict:
    """The one context both templates render."""
    failed = summary.expectations_failed
    critical = [f for f in failed if f["severity"] == "critical"]
    warnings = [f for f in failed if f["severity"] != "critical"]
    files = [{**f, "sha256": (f.get("sha256") or "")[:16]} for f in facts.get("files", [])]
    study_figures = study_figures or {}
    figures_by_name = {f.name: f for f in index_figures or []}

    baseline = event = placebo = nqp = table2 = table4 = robustness = nqp_robustness = nqp_res_iv = None
    curve = het = more = None
    if estimation is not None:
        baseline = baseline_results(estimation, ground_truth)
        event = event_study_results(estimation, ground_truth)
        placebo = placebo_results(estimation)
        nqp = nqp_results(estimation, ground_truth)
        table2, table4 = table2_results(estimation), table4_results(estimation, ground_truth)
        robustness = robustness_results(estimation)
        nqp_robustness, nqp_res_iv = nqp_robustness_results(estimation), nqp_resilience_iv_results(estimation)
        curve = spec_curve_results(estimation)
        het = heterogeneity_results(estimation, ground_truth)
        more = nqp_more_results(estimation, ground_truth)
        more = {**(more or {}), **modern_did_results(estimation, ground_truth)}

    checks = _checks(summary, facts, critical, warnings)
    sections = [Section("summary", "Summary", "summary")]
    index_section = [figures_by_name[n] for n in ("top_bottom", "map", "by_year") if n in figures_by_name]
    if index_section or figure_notes:
        years = f", {index_years[0]}–{index_years[1]}" if index_years else ""
        sections.append(Section("index", f"The resilience index{years}", "results", index_section))
    if top_cities:
        sections.append(Section("top-cities", top_title(len(top_cities), latest_year), "results"))
    if table2:
        sections.append(Section("table2", table2["title"], "results"))
    if baseline:
        sections.append(Section("baseline", "Baseline DID (the resilience study's Table 3)", "results",
                                [figures_by_name["treated_control"]] if "treated_control" in figures_by_name else []))
        sections.append(Section("event-study", event["title"], "results",
                                [study_figures["event_study"]] if "event_study" in study_figures else []))
        sections.append(Section("placebo", placebo["title"], "results",
                                [study_figures["placebo"]] if "placebo" in study_figures else []))
        if table4:
            sections.append(Section("table4", table4["title"], "results",
                                    [study_figures["pscore"]] if "pscore" in study_figures else []))
        if robustness:
            sections.append(Section("robustness", robustness["title"], "results"))
        if het:
            sections.append(Section("table5", het["table5"]["title"], "results"))
            for n in (6, 7):
                figure = [study_figures[f"table{n}"]] if f"table{n}" in study_figures else []
                sections.append(Section(f"table{n}", het[f"table{n}"]["title"], "results", figure))
        if curve:
            sections.append(Section("spec-curve", curve["title"], "results",
                                    [study_figures["spec_curve"]] if "spec_curve" in study_figures else []))
        sections.append(Section("nqp", nqp["title"], "results"))
        if nqp_robustness:
            sections.append(Section("nqp-robustness", nqp_robustness["title"], "results"))
        if more and "nqp-table5" in more:
            sections.append(Section("nqp-table5", more["nqp-table5"]["title"], "results"))
        if more and "nqp-table6" in more:
            sections.append(Section("nqp-table6", more["nqp-table6"]["title"], "results",
                                    [study_figures["nqp_table6"]] if "nqp_table6" in study_figures else []))
        if more and "nqp-res-table3" in more:
            sections.append(Section("nqp-res-table3", more["nqp-res-table3"]["title"], "results"))
        if nqp_res_iv:
            sections.append(Section("nqp-res-iv", nqp_res_iv["title"], "results"))
        for key in ("nqp-res-table5", "nqp-res-table6", "nqp-res-table7"):
            if more and key in more:
                figure = study_figures.get("nqp_res_table6") if key == "nqp-res-table6" else None
                sections.append(Section(key, more[key]["title"], "results", [figure] if figure else []))
        for key, names in (("modern-did", ("modern_did_event", "bacon")), ("honest-did", ("honest",)),
                           ("spatial-did", ("distance_bands",))):
            if more and key in more:
                sections.append(Section(key, more[key]["title"], "results",
                                        [study_figures[n] for n in names if n in study_figures]))
    elif "treated_control" in figures_by_name:
        sections.append(Section("treated-control", "Pilot cities vs the others", "results",
                                [figures_by_name["treated_control"]]))
    if summary.mode != "validate":
        sections += [Section("files", "Files", "details"), Section("dbt", "dbt build", "details"),
                     Section("changes", "New and changed cities and years", "details")]
    sections.append(Section("imputed", "Imputed cells", "details"))
    if facts.get("coverage"):
        sections.append(Section("names", "City names resolved", "details"))
    sections.append(Section("expectations", "Expectations", "details"))
    if summary.mode != "validate":
        sections.append(Section("revisions", "Revisions to published index values", "details"))
    sections.append(Section("where", "Where things are", "details"))

    return {
        "title": title_of(summary), "vintage": summary.vintage, "mode": summary.mode,
        "synthetic": summary.synthetic, "banner": _banner(),
        "status": summary.status, "status_class": summary.status.replace(" ", "-"), "reasons": summary.reasons,
        "dry_run": summary.mode == "dry-run",
        "summary": summary, "facts": facts, "files": files, "file_columns": FILE_COLUMNS,
        "critical": critical, "warnings": warnings, "limit": limit,
        "changed": _changed(summary, facts, files),
        "headline": _headline(summary, baseline, event, placebo),
        "checks": checks,
        "notes": list(facts.get("notes") or []),
        "figure_notes": list(figure_notes or []),
        "sections": sections, "titles": {s.id: s.short for s in sections},
        # details whose check failed are shown open: a refused load shows why without a click
        "open_sections": sorted({item["href"][1:] for item in checks if item["mark"] == "fail" and item["href"]}),
        "top_cities": top_cities or [],
        "baseline": baseline, "event": event, "placebo": placebo, "nqp": nqp, "table2": table2, "table4": table4, "robustness": robustness,
        "nqp_robustness": nqp_robustness, "nqp_res_iv": nqp_res_iv, "spec_curve": curve,
        "het": het, "more": more or {},
        "dbt_ran": dbt_ran(summary),
        "paths": {"warehouse": summary.warehouse, "folder": str(folder), "md": str(folder / "report.md"),
                  "html": str(folder / "report.html"), "index": str(folder / "index.html")},
        "gx_docs": summary.gx_docs,
        "timings": json.dumps(summary.step_seconds),
    }


def _banner() -> str:
    from warehouse.provenance import SYNTHETIC_BANNER

    return SYNTHETIC_BANNER
