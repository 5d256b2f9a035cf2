"""The studies' figures as PNG: the parallel-trends plot and the placebo plot.

matplotlib is imported lazily with the non-interactive Agg backend, so that
importing :mod:`estimation` never needs a display or pays for matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def event_study_figure(frame: pd.DataFrame, base: int, level: float, path: Path, title: str) -> Path:
    """Coefficients (points) with ``level`` CIs (bars) by event time; base marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    f = frame.dropna(subset=["coef"])
    b = f[f["event_time"] == base]
    f = f[f["event_time"] != base]
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axvline(base + 0.5 if base < 0 else base - 0.5, color="0.6", lw=0.8, ls="--")
    err = np.vstack([f["coef"] - f["ci_low"], f["ci_high"] - f["coef"]])
    ax.errorbar(f["event_time"], f["coef"], yerr=err, fmt="o", color="#1f4e79", ecolor="#5b8db8",
                capsize=3, lw=1.2, ms=5, label=f"estimate, {level:.0%} CI")
    ax.plot(b["event_time"], b["coef"], "o", mfc="white", mec="#1f4e79", ms=6, label=f"base period (k = {base})")
    ax.set_xticks(frame["event_time"])
    ax.set_xlabel("years relative to adoption (k)")
    ax.set_ylabel("coefficient")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def placebo_figure(coefs: np.ndarray, pvalues: np.ndarray, real: float, ri_p: float, path: Path,
                   title: str) -> Path:
    """Kernel density of the placebo coefficients and their p-values (scatter), real estimate marked."""
    from scipy.stats import gaussian_kde

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    c = np.asarray(coefs, dtype=float)
    p = np.asarray(pvalues, dtype=float)
    ok = np.isfinite(c) & np.isfinite(p)
    c, p = c[ok], p[ok]
    lo, hi = min(c.min(), real), max(c.max(), real)
    pad = 0.05 * (hi - lo or 1.0)
    grid = np.linspace(lo - pad, hi + pad, 400)
    if len(c) > 1 and np.ptp(c) > 0:
        ax.plot(grid, gaussian_kde(c)(grid), color="#1f4e79", lw=1.5, label="kernel density of placebo coefficients")
    ax.set_xlabel("placebo coefficient")
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)
    ax.axvline(real, color="#b22222", lw=1.2, ls="--", label=f"real estimate {real:.4g} (RI p = {ri_p:.3f})")
    ax2 = ax.twinx()
    ax2.scatter(c, p, s=6, color="#7a7a7a", alpha=0.5, label="p-value of each draw")
    ax2.axhline(0.1, color="0.5", lw=0.8, ls=":")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("p-value")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, frameon=False, fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=3)
    ax.set_title(title)
    return _save(fig, path)


def _density(ax, values: np.ndarray, weights: np.ndarray | None, grid: np.ndarray, **style) -> None:
    from scipy.stats import gaussian_kde

    if len(values) > 1 and np.ptp(values) > 0:
        ax.plot(grid, gaussian_kde(values, weights=weights)(grid), **style)


def pscore_density_figure(scores: pd.DataFrame, matched: pd.DataFrame, path: Path, title: str) -> Path:
    """Kernel densities of the propensity score, treated vs controls, before matching (every row
    of the sample) and after (matched rows, weighted by their matching weights)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), sharey=True)
    grid = np.linspace(0.0, 1.0, 400)
    panels = ((axes[0], scores, None, "before matching"), (axes[1], matched, "weight", "after matching"))
    for ax, frame, weight, label in panels:
        for treated, colour, name in ((True, "#b22222", "pilot cities"), (False, "#1f4e79", "other cities")):
            part = frame[frame["treated"].astype(bool) == treated]
            w = None if weight is None else part[weight].to_numpy(dtype=float)
            _density(ax, part["pscore"].to_numpy(dtype=float), w, grid, color=colour, lw=1.5,
                     label=f"{name} (n = {len(part)})")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("propensity score")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("density")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def group_coefficient_figure(estimates: pd.DataFrame, pooled_coef: float, path: Path, title: str) -> Path:
    """Estimates by group (points) with their CIs (bars), the pooled estimate dashed, zero marked.

    ``estimates``: columns ``group, coef, ci_low, ci_high``, one row per group.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    pos = np.arange(len(estimates))
    coef = estimates["coef"].to_numpy(dtype=float)
    err = np.vstack([coef - estimates["ci_low"].to_numpy(dtype=float),
                     estimates["ci_high"].to_numpy(dtype=float) - coef])
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axhline(pooled_coef, color="#b22222", lw=1.2, ls="--", label=f"pooled estimate {pooled_coef:.4g}")
    ax.errorbar(pos, coef, yerr=err, fmt="o", color="#1f4e79", ecolor="#5b8db8", capsize=4, lw=1.4, ms=6,
                label="estimate by group, CI")
    ax.set_xticks(pos)
    ax.set_xticklabels([str(g) for g in estimates["group"]])
    ax.set_xlim(-0.6, len(estimates) - 0.4)
    ax.set_xlabel("group")
    ax.set_ylabel("coefficient")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


_ESTIMATOR_STYLE = {"twfe": ("s", "0.35"), "cs_never": ("o", "#1f4e79"), "cs_notyet": ("o", "#5b8db8"),
                    "sa": ("^", "#b5542c"), "bjs": ("D", "#2e7d32"), "did2s": ("v", "#8e44ad")}


def overlay_event_studies_figure(rows: pd.DataFrame, path: Path, labels: dict, title: str,
                                 level: float = 0.95) -> Path:
    """Event-time estimates of several estimators side by side, with pointwise CIs.

    ``rows``: columns ``estimator, key`` (event time), ``coef, se``; one row per estimator and
    event time. Each estimator's points are shifted slightly so the CIs do not overlap."""
    from scipy import stats

    plt = _pyplot()
    z = float(stats.norm.ppf(0.5 + level / 2))
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axvline(-0.5, color="0.6", lw=0.8, ls="--")
    names = [n for n in labels if n in set(rows["estimator"])]
    width = 0.6 / max(len(names), 1)
    for j, name in enumerate(names):
        part = rows[(rows["estimator"] == name) & rows["coef"].notna()].sort_values("key")
        x = part["key"].to_numpy(dtype=float) + (j - (len(names) - 1) / 2) * width
        coef, se = part["coef"].to_numpy(dtype=float), part["se"].to_numpy(dtype=float)
        marker, colour = _ESTIMATOR_STYLE.get(name, ("o", None))
        ax.errorbar(x, coef, yerr=z * np.nan_to_num(se), fmt=marker, color=colour, ecolor=colour, capsize=2,
                    lw=1.0, ms=4, label=labels[name])
    ax.set_xlabel("years relative to adoption (event time)")
    ax.set_ylabel(f"effect, {level:.0%} CI")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return _save(fig, path)


def bacon_figure(comparisons: pd.DataFrame, twfe: float, path: Path) -> Path:
    """Goodman-Bacon scatter: each 2x2 estimate against its weight, by comparison type."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours = {"treated vs never": "#1f4e79", "earlier vs later treated": "#2e7d32",
               "later vs earlier treated": "#b5542c"}
    for kind, part in comparisons.groupby("type", sort=False):
        ax.scatter(part["weight"], part["estimate"], s=36, color=colours.get(kind), label=kind, alpha=0.85)
    ax.axhline(twfe, color="#b22222", lw=1.2, ls="--", label=f"TWFE = weighted sum = {twfe:.4g}")
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xlabel("weight in the TWFE coefficient")
    ax.set_ylabel("2x2 DID estimate")
    ax.set_title("Goodman-Bacon decomposition of the TWFE DID")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def honest_panels_figure(results: dict, path: Path, xlabels: dict | None = None) -> Path:
    """HonestDiD robust CIs by M, one panel per restriction (relative magnitudes, smoothness)."""
    from .honest import honest_figure

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6.0 * len(results), 4.2), squeeze=False)
    titles = {"relative_magnitude": "relative magnitudes (Mbar)", "smoothness": "smoothness (M)"}
    for ax, (name, result) in zip(axes[0], results.items()):
        honest_figure(result, ax=ax)
        ax.set_title(f"HonestDiD: {titles.get(name, name)}")
        if xlabels and name in xlabels:
            ax.set_xlabel(xlabels[name])
    return _save(fig, path)


def distance_band_figure(bands: pd.DataFrame, path: Path) -> Path:
    """The DID on untreated cities by distance band to the nearest treated city, with CIs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    part = bands.dropna(subset=["coef"])
    mid = ((part["lo_km"] + part["hi_km"]) / 2).to_numpy(dtype=float)
    coef = part["coef"].to_numpy(dtype=float)
    err = np.vstack([coef - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - coef])
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.errorbar(mid, coef, yerr=err, fmt="o", color="#1f4e79", ecolor="#5b8db8", capsize=4, lw=1.4, ms=6)
    ax.set_xticks(mid)
    ax.set_xticklabels([f"{lo:g}–{hi:g}" for lo, hi in zip(part["lo_km"], part["hi_km"])], fontsize=8)
    ax.set_xlabel("distance to the nearest treated city (km)")
    ax.set_ylabel("effect on untreated cities, 95% CI")
    ax.set_title("Spillover by distance band")
    return _save(fig, path)
