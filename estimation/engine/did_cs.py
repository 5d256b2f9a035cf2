"""Callaway & Sant'Anna (2021) group-time ATTs for staggered adoption, in DuckDB.

Estimand.  With cohorts g (a unit's first treated period), ATT(g,t) = E[Y_t(g) - Y_t(0) | G = g].
Under parallel trends with respect to the comparison group C (never treated, or "not yet
treated" by period max(t, b) + anticipation, the own cohort excluded) each ATT(g,t) is one
2x2 comparison between the base period b and t:

    ATT(g,t) = E[Y_t - Y_b | G = g] - E[Y_t - Y_b | C]                      (unconditional)

b = g - 1 - anticipation (the last period before g - anticipation) for post periods (t >= g);
for pre periods b = t - 1 with ``base_period="varying"`` and b = g - 1 - anticipation with
``"universal"`` (whose reference cell t = b is reported as ATT = 0 with no standard error).

Influence functions.  Cell c uses the n_c units of cohort g and of C (n_T and n_C of them),
N units in all.  Unconditionally the unit-level influence function is

    psi_i,c =  N (dY_i - mean_T dY) / n_T     for i in cohort g,
    psi_i,c = -N (dY_i - mean_C dY) / n_C     for i in C,      0 otherwise,

so se(ATT(g,t)) = sqrt(sum_i psi_i,c^2) / N = sqrt(SS_T / n_T^2 + SS_C / n_C^2) (sums of squares
around the group means, no degrees-of-freedom correction: R ``did``'s ``sqrt(diag(V) / n)``,
V = psi'psi / n).  With covariates X (constant added; taken in the earlier of the cell's two
periods, as R ``did`` does) the 2x2 is Sant'Anna & Zhao's (2020) panel estimator on the cell:
``"dr"`` (doubly robust: logit propensity score, OLS of dY on X among C), ``"reg"`` (outcome
regression) or ``"ipw"`` (normalised inverse probability weighting), with the influence function
of the paper (estimation effects of the logit and OLS coefficients included), rescaled by N/n_c.
Comparison units with a propensity score >= 0.995 get weight 0 (DRDID's trimming); a cell
whose largest score reaches 0.999 (R did's overlap check), or whose comparison units cannot
support the regression, is reported with ATT = NaN and a warning (R ``did`` reports NA).

Aggregations (R ``did::aggte``), with pg = P(G = g) (cohort share of all N units):
``simple`` sum_{post} pg ATT / sum pg; ``dynamic`` per event time e = t - g the pg-weighted
mean, overall = mean over e >= 0; ``group`` per cohort the mean over its post periods, overall
pg-weighted; ``calendar`` per period t the pg-weighted mean over cohorts with g <= t, overall
the mean over t.  pg-weighted averages add the influence of the estimated weights (R's
``wif``), which for kept cells K with S = sum_K pg reduces to
``(sum_{k in K, g_k = G_i} (ATT_k - theta)) / S`` for unit i.

Multiplier bootstrap (R ``did::mboot``): per draw b and cluster c a weight v_bc (Rademacher,
as R via ``BMisc::multiplier_bootstrap``; Mammen as moderndid 0.2.0 optional) multiplies the
cluster sums S_c of the influence function; bres_b = sum_c v_bc S_c / sqrt(G); the bootstrap
se is IQR(bres) / (z_.75 - z_.25) * sqrt(G) / N (type-1 quantiles), the uniform band's critical
value the (1 - alpha) type-1 quantile of max_k |bres_bk / bSigma_k| (never below the pointwise
z_{1 - alpha/2}, as R).  Checked against moderndid 0.2.0 in ``tests/test_did_cs.py``.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy import special, stats

from .did_common import NEVER, Aggregate, StaggeredPanel, read_staggered_panel
from .sqlutil import TempScope, temp_scope

SE_FLOOR = math.sqrt(np.finfo(float).eps) * 10  # R did: smaller standard errors are reported as NA
TRIM_LEVEL = 0.995  # DRDID: comparison units with a larger propensity score get weight 0
OVERLAP_MAX = 0.999  # R did: a cell with a larger propensity score is not estimated
IQR_NORMAL = float(stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
MAMMEN = ((1.0 - math.sqrt(5.0)) / 2.0, (1.0 + math.sqrt(5.0)) / 2.0)
MAMMEN_P = (1.0 + math.sqrt(5.0)) / (2.0 * math.sqrt(5.0))  # P(v = (1 - sqrt 5) / 2)


# ----------------------------------------------------------------- the (g, t) cells

@dataclass
class _Cell:
    group: float
    time: float
    base: float
    tid_t: int
    tid_b: int
    tid_x: int  # covariates come from the earlier of the two periods (R did's panel2cs)
    ctrl_after: float  # not-yet-treated comparison units have cohort > ctrl_after (inf: never treated only)
    post: bool
    reference: bool  # universal base: t = b, ATT 0 by construction


def _cells(periods: list, cohorts: list, control: str, base_period: str, anticipation: int) -> list[_Cell]:
    """The ATT(g,t) cells in R did's order: cohorts ascending, then periods ascending."""
    tid = {p: j for j, p in enumerate(periods)}
    out = []
    for g in cohorts:
        main_base = [p for p in periods if p < g - anticipation][-1]  # exists: early cohorts were dropped
        times = periods[1:] if base_period == "varying" else periods
        for t in times:
            post = g <= t
            b = periods[tid[t] - 1] if (base_period == "varying" and not post) else main_base
            after = max(t, b) + anticipation if control == "notyet" else NEVER
            out.append(_Cell(group=g, time=t, base=b, tid_t=tid[t], tid_b=tid[b], tid_x=min(tid[t], tid[b]),
                             ctrl_after=after, post=post, reference=(t == b)))
    return out


def _cell_units(con: duckdb.DuckDBPyConnection, scope: TempScope, data: StaggeredPanel, cells: list[_Cell]) -> str:
    """Temp table (cell, uid, d, dy, x0..): each estimable cell's cohort and comparison units with
    their long difference Y_t - Y_b (and covariates from period tid_x) - a join of the cell list
    with the unit table and two (three) look-ups in the panel."""
    frame = pd.DataFrame({
        "cell": np.arange(len(cells), dtype=np.int32),
        "g": [c.group for c in cells], "tid_t": [c.tid_t for c in cells], "tid_b": [c.tid_b for c in cells],
        "tid_x": [c.tid_x for c in cells], "ctrl_after": [float(c.ctrl_after) for c in cells],
        "reference": [c.reference for c in cells],
    }).astype({"g": float, "tid_t": np.int32, "tid_b": np.int32, "tid_x": np.int32})
    cell_view = scope.register(frame, "did_cells")
    xs = "".join(f", px.{x} AS {x}" for x in data.covariates)
    join_x = (f" JOIN {data.panel} px ON px.__uid = u.__uid AND px.__tid = c.tid_x" if data.covariates else "")
    table = scope.table("did_cellunits")
    con.execute(
        f"CREATE TEMP TABLE {table} AS "
        f"SELECT c.cell, u.__uid AS uid, u.__g = c.g AS d, p1.__y - p0.__y AS dy{xs} "
        f"FROM {cell_view} c JOIN {data.units} u "
        f"  ON u.__g = c.g OR isinf(u.__g) OR u.__g > c.ctrl_after "
        f"JOIN {data.panel} p1 ON p1.__uid = u.__uid AND p1.__tid = c.tid_t "
        f"JOIN {data.panel} p0 ON p0.__uid = u.__uid AND p0.__tid = c.tid_b{join_x} "
        f"WHERE NOT c.reference")
    return table


@dataclass
class _CellFit:
    att: float
    psi: np.ndarray | None  # (n_c,) cell-scale influence function (ATT - theta ~ mean psi), None when failed
    note: str = ""


# ----------------------------------------------------------------- unconditional: all in SQL

def _unconditional(con, scope: TempScope, table: str, n_units: int, n_cells: int):
    """ATT, group sizes and the unit-level influence function of every cell, from SQL group-bys."""
    m = scope.table("did_means")
    con.execute(f"CREATE TEMP TABLE {m} AS SELECT cell, d, count(*) AS n, fsum(dy) / count(*) AS mu "
                f"FROM {table} GROUP BY cell, d")
    means: dict[int, dict[bool, tuple[int, float]]] = {}
    for cell, d, n, mu in con.execute(f"SELECT cell, d, n, mu FROM {m} ORDER BY cell, d").fetchall():
        means.setdefault(int(cell), {})[bool(d)] = (int(n), float(mu))
    psi = con.execute(
        f"SELECT t.cell, t.uid, CASE WHEN t.d THEN (t.dy - m.mu) / m.n ELSE -(t.dy - m.mu) / m.n END * ? AS psi "
        f"FROM {table} t JOIN {m} m USING (cell, d)", [float(n_units)]).df()
    infl = np.zeros((n_units, n_cells))
    infl[psi["uid"].to_numpy() - 1, psi["cell"].to_numpy()] = psi["psi"].to_numpy()
    return means, infl


# ----------------------------------------------------------------- with covariates: the 2x2 DRDID estimators

def _logit(X: np.ndarray, d: np.ndarray, maxiter: int = 100) -> np.ndarray | None:
    """Logit MLE by Newton-Raphson to machine precision (None when it does not converge)."""
    p0 = d.mean()
    beta = np.zeros(X.shape[1])
    beta[0] = math.log(p0 / (1.0 - p0))
    for _ in range(maxiter):
        p = special.expit(X @ beta)
        H = X.T @ (X * (p * (1.0 - p))[:, None])
        try:
            step = np.linalg.solve(H, X.T @ (d - p))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            return None
        if np.max(np.abs(step)) <= 1e-13 * (1.0 + np.max(np.abs(beta))):
            return beta
    return None


def _ols_controls(X, dy, d):
    """OLS of dY on X among the comparison units: fitted values for all units, and the OLS
    asymptotic linear representation r_i = (1 - D_i)(dY_i - m_i) X_i' M^-1, M = X'(1-D)X / n."""
    c = d == 0
    Xc = X[c]
    gram = Xc.T @ Xc
    if Xc.shape[0] < X.shape[1] or np.linalg.cond(gram) > 1.0 / np.finfo(float).eps:
        return None
    beta = np.linalg.lstsq(Xc, dy[c], rcond=None)[0]
    m = X @ beta
    n = X.shape[0]
    r = ((1.0 - d) * (dy - m))[:, None] * X @ np.linalg.inv(gram / n)
    return m, r


def _pscore(X, d):
    """Logit propensity score p and the logit's asymptotic linear representation
    l_i = (D_i - p_i) X_i' H, H = n (X' diag(p(1-p)) X)^-1 (R: vcov(glm) * n)."""
    gamma = _logit(X, d)
    if gamma is None:
        return None
    p = special.expit(X @ gamma)
    n = X.shape[0]
    H = np.linalg.inv(X.T @ (X * (p * (1.0 - p))[:, None])) * n
    return p, ((d - p)[:, None] * X) @ H


def _two_by_two(method: str, dy: np.ndarray, d: np.ndarray, X: np.ndarray) -> _CellFit:
    """Sant'Anna & Zhao (2020) panel ATT and its influence function on one cell's units."""
    if method in ("dr", "ipw"):
        ps = _pscore(X, d)
        if ps is None:
            return _CellFit(math.nan, None, "the propensity-score logit did not converge")
        p, lin_ps = ps
        # DRDID caps p at 1 - 1e-6; that cap never binds here because such cells are refused
        if p.max() >= OVERLAP_MAX:
            return _CellFit(math.nan, None, "overlap violated (a propensity score >= 0.999)")
        keep = np.where(d == 1, 1.0, (p < TRIM_LEVEL).astype(float))
        w1 = d.copy()
        w0 = keep * p * (1.0 - d) / (1.0 - p)
        if w0.mean() == 0:
            return _CellFit(math.nan, None, "no comparison unit left after trimming the propensity score")
    if method in ("dr", "reg"):
        orf = _ols_controls(X, dy, d)
        if orf is None:
            return _CellFit(math.nan, None, "not enough comparison units to run the outcome regression")
        m, lin_or = orf

    if method == "dr":
        res = dy - m
        eta1 = np.mean(w1 * res) / w1.mean()
        eta0 = np.mean(w0 * res) / w0.mean()
        inf_treat = (w1 * res - w1 * eta1 - lin_or @ np.mean(w1[:, None] * X, axis=0)) / w1.mean()
        inf_cont = (w0 * res - w0 * eta0
                    + lin_ps @ np.mean(((w0 * res - w0 * eta0))[:, None] * X, axis=0)
                    - lin_or @ np.mean(w0[:, None] * X, axis=0)) / w0.mean()
        return _CellFit(eta1 - eta0, inf_treat - inf_cont)
    if method == "reg":
        w = d
        eta1 = np.mean(w * dy) / w.mean()
        eta0 = np.mean(w * m) / w.mean()
        inf_treat = (w * dy - w * eta1) / w.mean()
        inf_cont = (w * m - w * eta0 + lin_or @ np.mean(w[:, None] * X, axis=0)) / w.mean()
        return _CellFit(eta1 - eta0, inf_treat - inf_cont)
    # normalised (Hajek) IPW
    att1 = np.mean(w1 * dy) / w1.mean()
    att0 = np.mean(w0 * dy) / w0.mean()
    inf_treat = (w1 * dy - w1 * att1) / w1.mean()
    inf_cont = (w0 * dy - w0 * att0) / w0.mean()
    inf_ps = lin_ps @ (np.mean((w0 * (dy - att0))[:, None] * X, axis=0) / w0.mean())
    return _CellFit(att1 - att0, inf_treat - (inf_cont + inf_ps))


def _with_covariates(con, table: str, data: StaggeredPanel, method: str, n_cells: int):
    xs = ", ".join(data.covariates)
    frame = con.execute(f"SELECT cell, uid, d, dy, {xs} FROM {table} ORDER BY cell, uid").df()
    cell = frame["cell"].to_numpy()
    uid = frame["uid"].to_numpy() - 1
    d_all = frame["d"].to_numpy().astype(float)
    dy_all = frame["dy"].to_numpy()
    X_all = np.column_stack([np.ones(len(frame)), frame[data.covariates].to_numpy(dtype=float)])
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]]) if len(cell) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(cell)]
    fits: dict[int, tuple[_CellFit, int, int]] = {}
    infl = np.zeros((data.n_units, n_cells))
    N = data.n_units
    for s, e in zip(starts, ends):
        c = int(cell[s])
        d = d_all[s:e]
        n_t, n_c = int(d.sum()), int((1 - d).sum())
        if n_t == 0 or n_c == 0:
            continue
        fit = _two_by_two(method, dy_all[s:e], d, X_all[s:e])
        fits[c] = (fit, n_t, n_c)
        if fit.psi is not None:
            infl[uid[s:e], c] = fit.psi * (N / (e - s))
    return fits, infl


# ----------------------------------------------------------------- the multiplier bootstrap

def draw_multipliers(kind: str, draws: int, n_clusters: int, seed: int | None) -> np.ndarray:
    """A (draws x G) matrix of Rademacher (+-1, p = 1/2) or Mammen two-point weights."""
    rng = np.random.default_rng(seed)
    if kind == "rademacher":
        return rng.integers(0, 2, size=(draws, n_clusters)).astype(float) * 2.0 - 1.0
    if kind == "mammen":
        return np.where(rng.random(size=(draws, n_clusters)) < MAMMEN_P, MAMMEN[0], MAMMEN[1])
    raise ValueError(f"bootstrap weights must be 'rademacher' or 'mammen', not {kind!r}")


def _cluster_sums(infl: np.ndarray, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    S = np.zeros((n_clusters, infl.shape[1]))
    np.add.at(S, cluster, infl)
    return S


@dataclass
class _Boot:
    se: np.ndarray  # (m,) NaN for degenerate columns
    crit_val: float  # uniform band critical value (never below the pointwise one)
    crit_val_raw: float  # the bootstrap sup-t quantile itself
    notes: list[str]


def _mboot(infl: np.ndarray, cluster: np.ndarray, V: np.ndarray, alpha: float) -> _Boot:
    """R did's mboot on cluster sums (see the module doc)."""
    N = infl.shape[0]
    G = V.shape[1]
    S = _cluster_sums(np.nan_to_num(infl), cluster, G)
    bres = V @ S / math.sqrt(G)
    m = infl.shape[1]
    ok = np.all(np.isfinite(infl), axis=0) & (np.sum(bres**2, axis=0) > SE_FLOOR)
    se = np.full(m, np.nan)
    bsig = np.full(m, np.nan)
    if ok.any():
        q75 = np.quantile(bres[:, ok], 0.75, axis=0, method="inverted_cdf")
        q25 = np.quantile(bres[:, ok], 0.25, axis=0, method="inverted_cdf")
        b = (q75 - q25) / IQR_NORMAL
        b[b <= SE_FLOOR] = np.nan
        bsig[ok] = b
        se[ok] = b * math.sqrt(G) / N
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    good = np.isfinite(bsig)
    notes: list[str] = []
    raw = math.nan
    if good.any():
        bT = np.max(np.abs(bres[:, good] / bsig[good]), axis=1)
        bT = bT[np.isfinite(bT)]
        if len(bT):
            raw = float(np.quantile(bT, 1.0 - alpha, method="inverted_cdf"))
    crit = raw
    if not math.isfinite(raw) or raw < z:
        notes.append("the simultaneous band's critical value is below the pointwise one: pointwise bands reported")
        crit = z
    elif raw >= 7:
        notes.append("the simultaneous critical value is very large (>= 7): the uniform band is unreliable")
    return _Boot(se=se, crit_val=crit, crit_val_raw=raw, notes=notes)


# ----------------------------------------------------------------- aggregation (R did::aggte)

def _floor(se: float) -> float:
    return se if se > SE_FLOOR else math.nan


def _analytic_se(infl: np.ndarray) -> np.ndarray:
    """sqrt(sum_i psi_i^2) / N per column (R did: sqrt(mean(psi^2) / n))."""
    N = infl.shape[0]
    se = np.sqrt(np.sum(infl**2, axis=0)) / N
    return np.where(se > SE_FLOOR, se, np.nan)


def _weighted(att: np.ndarray, infl: np.ndarray, groups: np.ndarray, pg: np.ndarray, unit_cohort: np.ndarray):
    """pg-weighted mean of the ATTs of kept cells and its influence function with R's ``wif``
    term: psi @ w + (sum_{k: g_k = G_i} (ATT_k - theta)) / S, S = sum pg."""
    S = pg.sum()
    w = pg / S
    theta = float(att @ w)
    psi = infl @ w
    dev = {}
    for g, a in zip(groups, att):
        dev[g] = dev.get(g, 0.0) + (a - theta)
    wif = np.zeros(len(unit_cohort))
    for g, v in dev.items():
        wif[unit_cohort == g] = v / S
    return theta, psi + wif


class CSResult:
    """Group-time ATTs of :func:`cs_att_gt`, their unit-level influence functions and aggregations."""

    def __init__(self, *, att_gt: list[dict], influence: np.ndarray, data: StaggeredPanel, settings: dict,
                 multipliers: np.ndarray | None, boot: _Boot | None, warnings: list[str], elapsed_s: float):
        self.att_gt = att_gt
        self.influence = influence  # (N x cells), rows in the order of unit_ids
        self.unit_ids = data.unit_ids
        self.unit_cohort = data.unit_cohort
        self.unit_cluster = data.unit_cluster
        self.n_units = data.n_units
        self.n_clusters = data.n_clusters
        self.periods = data.periods
        self.cohorts = data.cohorts
        self.settings = settings
        self.multipliers = multipliers
        self.crit_val = None if boot is None else boot.crit_val
        self.crit_val_raw = None if boot is None else boot.crit_val_raw
        self.warnings = warnings
        self.elapsed_s = elapsed_s

    @property
    def alpha(self) -> float:
        return self.settings["alpha"]

    def att_gt_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.att_gt)

    def _pg(self, g) -> float:
        return float(np.mean(self.unit_cohort == g))

    def _finish(self, kind: str, theta: float, psi: np.ndarray, rows: list[dict], row_infl: np.ndarray | None,
                ) -> Aggregate:
        agg = Aggregate(kind=kind, coef=theta, se=_floor(float(np.sqrt(np.sum(psi**2)) / self.n_units)),
                        rows=rows, alpha=self.alpha, influence=psi, row_influence=row_infl)
        if self.multipliers is not None:
            agg.se_boot = float(_mboot(psi[:, None], self.unit_cluster, self.multipliers, self.alpha).se[0])
            if rows:
                b = _mboot(row_infl, self.unit_cluster, self.multipliers, self.alpha)
                agg.crit_val = b.crit_val
                for r, s in zip(rows, b.se):
                    r["se_boot"] = float(s)
                    r["lo"] = r["coef"] - b.crit_val * s
                    r["hi"] = r["coef"] + b.crit_val * s
        return agg

    def aggregate(self, kind: str = "simple", min_e: float | None = None, max_e: float | None = None,
                  balance_e: int | None = None) -> Aggregate:
        """Aggregate the ATT(g,t) as R ``did::aggte(type=kind, min_e, max_e, balance_e, na.rm=TRUE)``.

        ``max_e`` also limits ``simple`` and ``group`` to t <= g + max_e (periods counted on
        R's recoded 1, 2, ... scale of the union of periods and cohorts); ``min_e`` and
        ``balance_e`` apply to ``dynamic`` only.  Cells with ATT = NaN are left out (na.rm).
        """
        if kind not in ("simple", "dynamic", "group", "calendar"):
            raise ValueError(f"kind must be 'simple', 'dynamic', 'group' or 'calendar', not {kind!r}")
        lo_e = -math.inf if min_e is None else float(min_e)
        hi_e = math.inf if max_e is None else float(max_e)
        keep = [j for j, r in enumerate(self.att_gt) if math.isfinite(r["att"])]
        if not keep:
            raise ValueError("every ATT(g,t) is NaN: nothing to aggregate")
        g = np.array([float(self.att_gt[j]["group"]) for j in keep])
        t = np.array([float(self.att_gt[j]["time"]) for j in keep])
        att = np.array([self.att_gt[j]["att"] for j in keep])
        infl = self.influence[:, keep]
        scale = {v: i + 1 for i, v in enumerate(sorted(set(g) | set(t)))}
        gr = np.array([scale[v] for v in g], dtype=float)
        tr = np.array([scale[v] for v in t], dtype=float)
        pg = np.array([self._pg(v) for v in g])

        if kind == "simple":
            k = (gr <= tr) & (tr <= gr + hi_e)
            if not k.any():
                raise ValueError("no post-treatment ATT(g,t) to aggregate")
            theta, psi = _weighted(att[k], infl[:, k], g[k], pg[k], self.unit_cohort)
            return self._finish(kind, theta, psi, [], None)

        if kind == "group":
            rows, cols, thetas, groups = [], [], [], []
            for v in sorted(set(g)):
                gv = scale[v]
                k = (g == v) & (gv <= tr) & (tr <= gv + hi_e)
                if not k.any():
                    continue
                theta_g = float(att[k].mean())
                psi_g = infl[:, k].mean(axis=1)
                rows.append({"group": _json_num(v), "coef": theta_g, "se": _floor(float(np.sqrt(np.sum(psi_g**2))
                                                                                 / self.n_units))})
                cols.append(psi_g)
                thetas.append(theta_g)
                groups.append(v)
            if not rows:
                raise ValueError("no cohort has a post-treatment ATT(g,t) to aggregate")
            row_infl = np.column_stack(cols)
            theta, psi = _weighted(np.array(thetas), row_infl, np.array(groups),
                                   np.array([self._pg(v) for v in groups]), self.unit_cohort)
            return self._finish(kind, theta, psi, rows, row_infl)

        if kind == "dynamic":
            e = t - g
            include = np.ones(len(g), dtype=bool)
            es = np.unique(e)
            if balance_e is not None:
                t_max, t_min = max(t), min(min(t), min(g))
                include = (t_max - g) >= balance_e
                es = np.unique(e[include])
                es = es[(es <= balance_e) & (es >= balance_e - t_max + t_min)]
            es = es[(es >= lo_e) & (es <= hi_e)]
            rows, cols, thetas = [], [], []
            for ev in es:
                k = (e == ev) & include
                theta_e, psi_e = _weighted(att[k], infl[:, k], g[k], pg[k], self.unit_cohort)
                rows.append({"event_time": _json_num(ev), "coef": theta_e,
                             "se": _floor(float(np.sqrt(np.sum(psi_e**2)) / self.n_units))})
                cols.append(psi_e)
                thetas.append(theta_e)
            if not rows:
                raise ValueError("no event time is left between min_e and max_e")
            row_infl = np.column_stack(cols)
            post = es >= 0
            if not post.any():
                theta, psi = math.nan, np.zeros(self.n_units)
            else:
                theta = float(np.mean(np.array(thetas)[post]))
                psi = row_infl[:, post].mean(axis=1)
            return self._finish(kind, theta, psi, rows, row_infl)

        # calendar
        rows, cols, thetas = [], [], []
        for tv in sorted(set(t)):
            if tv < min(g):
                continue
            k = (t == tv) & (g <= tv)
            if not k.any():
                continue
            theta_t, psi_t = _weighted(att[k], infl[:, k], g[k], pg[k], self.unit_cohort)
            rows.append({"time": _json_num(tv), "coef": theta_t,
                         "se": _floor(float(np.sqrt(np.sum(psi_t**2)) / self.n_units))})
            cols.append(psi_t)
            thetas.append(theta_t)
        row_infl = np.column_stack(cols)
        return self._finish(kind, float(np.mean(thetas)), row_infl.mean(axis=1), rows, row_infl)

    def to_dict(self) -> dict:
        """The JSON shape: settings, ``att_gt`` records and the four default aggregations."""
        recs = []
        for r in self.att_gt:
            rec = {"group": r["group"], "time": r["time"], "coef": _json_num(r["att"]), "se": _json_num(r["se"]),
                   "event_time": r["event_time"], "post": r["post"], "base": r["base"],
                   "n_treated": r["n_treated"], "n_control": r["n_control"]}
            for k in ("se_boot", "lo", "hi", "note"):
                if k in r:
                    rec[k] = _json_num(r[k]) if k != "note" else r[k]
            recs.append(rec)
        aggregates = {}
        for kind in ("simple", "dynamic", "group", "calendar"):
            try:
                aggregates[kind] = self.aggregate(kind).to_dict()
            except ValueError as exc:
                aggregates[kind] = {"coef": None, "se": None, "error": str(exc)}
        out = {"method": "cs", **{k: v for k, v in self.settings.items()}, "n_units": self.n_units,
               "n_clusters": self.n_clusters, "periods": self.periods, "cohorts": self.cohorts,
               "crit_val": _json_num(self.crit_val) if self.crit_val is not None else None,
               "warnings": list(self.warnings), "att_gt": recs, "aggregates": aggregates}
        return out


def _json_num(v):
    """JSON-safe number: None for NaN/inf, int when integral."""
    f = float(v)
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() else f


# ----------------------------------------------------------------- the entry point

def _check_options(control, method, base_period, alpha, bootstrap_draws, bootstrap_weights):
    if control not in ("never", "notyet"):
        raise ValueError(f"control must be 'never' (never-treated units) or 'notyet' (not-yet-treated), "
                         f"not {control!r}")
    if method not in ("dr", "reg", "ipw"):
        raise ValueError(f"method must be 'dr', 'reg' or 'ipw', not {method!r}")
    if base_period not in ("varying", "universal"):
        raise ValueError(f"base_period must be 'varying' or 'universal', not {base_period!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, not {alpha!r}")
    if int(bootstrap_draws) != bootstrap_draws or bootstrap_draws < 0:
        raise ValueError(f"bootstrap_draws must be a non-negative integer, not {bootstrap_draws!r}")
    if bootstrap_weights not in ("rademacher", "mammen"):
        raise ValueError(f"bootstrap_weights must be 'rademacher' or 'mammen', not {bootstrap_weights!r}")


def cs_att_gt(
    con: duckdb.DuckDBPyConnection,
    relation,
    *,
    outcome: str,
    unit: str,
    time: str,
    cohort: str,
    control: str = "never",
    covariates: list[str] | None = None,
    method: str = "dr",
    base_period: str = "varying",
    anticipation: int = 0,
    alpha: float = 0.05,
    bootstrap_draws: int = 999,
    bootstrap_weights: str = "rademacher",
    seed: int | None = None,
    cluster: str | None = None,
) -> CSResult:
    """Callaway & Sant'Anna (2021) ATT(g,t) on a balanced panel (formulas in the module doc).

    ``relation``: table/view name, SQL query, DuckDBPyRelation or pandas DataFrame (as
    :func:`feols`).  ``cohort``: each unit's first treated period, 0 or NULL if never treated.
    ``control``: ``"never"`` or ``"notyet"``.  ``covariates``: columns for the conditional
    parallel-trends 2x2 (``method`` ``"dr"``/``"reg"``/``"ipw"``; without covariates the 2x2 is the
    plain difference of mean long differences and ``method`` is unused).  ``bootstrap_draws = 0``
    skips the multiplier bootstrap; ``cluster`` (time-invariant within unit) defaults to the unit.
    The analytic ``se`` is always the unit-level one (as R did); ``se_boot`` and the uniform bands
    use the bootstrap over ``cluster``.
    """
    t0 = _time.perf_counter()
    _check_options(control, method, base_period, alpha, bootstrap_draws, bootstrap_weights)
    covariates = list(covariates or [])
    if len(set(covariates)) != len(covariates):
        raise ValueError(f"covariates are listed twice: {covariates}")
    with temp_scope(con) as scope:
        data = read_staggered_panel(con, scope, relation, outcome=outcome, unit=unit, time=time, cohort=cohort,
                                    covariates=covariates, cluster=cluster, anticipation=int(anticipation))
        cells = _cells(data.periods, data.cohorts, control, base_period, int(anticipation))
        table = _cell_units(con, scope, data, cells)
        if covariates:
            fits, infl = _with_covariates(con, table, data, method, len(cells))
        else:
            means, infl = _unconditional(con, scope, table, data.n_units, len(cells))
            fits = {}
            for c, m in means.items():
                if True in m and False in m:
                    fits[c] = (_CellFit(m[True][1] - m[False][1], np.empty(0)), m[True][0], m[False][0])

    warnings = list(data.warnings)
    se = _analytic_se(infl)
    records = []
    for j, c in enumerate(cells):
        rec = {"group": c.group, "time": c.time, "event_time": _json_num(c.time - c.group), "post": bool(c.post),
               "base": c.base, "n_treated": 0, "n_control": 0}
        if c.reference:
            rec.update(att=0.0, se=math.nan, note="reference period of the universal base")
            infl[:, j] = 0.0
        elif j in fits:
            fit, n_t, n_c = fits[j]
            rec.update(att=float(fit.att), se=float(se[j]) if math.isfinite(fit.att) else math.nan,
                       n_treated=n_t, n_control=n_c)
            if fit.psi is None:
                rec["note"] = fit.note
                infl[:, j] = math.nan
                warnings.append(f"ATT({c.group},{c.time}) not estimated: {fit.note}")
        else:
            rec.update(att=math.nan, se=math.nan, note="no treated or no comparison units")
            infl[:, j] = math.nan
            warnings.append(f"ATT({c.group},{c.time}) not estimated: no treated or no comparison units")
        records.append(rec)

    V = boot = None
    if bootstrap_draws:
        V = draw_multipliers(bootstrap_weights, int(bootstrap_draws), data.n_clusters, seed)
        boot = _mboot(infl, data.unit_cluster, V, alpha)
        warnings += boot.notes
        for rec, s in zip(records, boot.se):
            if math.isfinite(rec["att"]) and not rec.get("note", "").startswith("reference"):
                rec["se_boot"] = float(s)
                rec["lo"] = rec["att"] - boot.crit_val * s
                rec["hi"] = rec["att"] + boot.crit_val * s
    settings = {"control": control, "base_period": base_period, "anticipation": int(anticipation),
                "estimation": method if covariates else "unconditional", "covariates": covariates,
                "alpha": alpha, "bootstrap_draws": int(bootstrap_draws),
                "bootstrap_weights": bootstrap_weights if bootstrap_draws else None,
                "seed": seed if bootstrap_draws else None, "cluster": cluster or unit}
    return CSResult(att_gt=records, influence=infl, data=data, settings=settings, multipliers=V, boot=boot,
                    warnings=warnings, elapsed_s=_time.perf_counter() - t0)
