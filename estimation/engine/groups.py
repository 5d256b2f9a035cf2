"""Does a coefficient differ between two groups of units?  Split samples, the Chow test, Fisher.

Applied papers split the sample (key vs ordinary cities, resource-based or not) and
read "the effect is larger in X" off two columns without testing the difference.
Three tools, one formula ``"y ~ did + x1 + x2 | unit + period"`` throughout:

* :func:`split_sample` - the formula fitted by :func:`.model.feols` on each value of
  ``group`` (rows with a NULL group are left out);
* :func:`interaction_test` - the fully interacted pooled model (Chow): every regressor
  also enters multiplied by D = 1[group = g1], every fixed effect is replaced by its
  group x FE key (a concatenated SQL column; for a time-invariant group the unit FE
  keeps its levels, the period FE becomes group x period), and no intercept is shared
  (models without FE get D itself).  The design is block-diagonal across groups, so the
  pooled coefficients are the split-sample ones (b0 on x, b1 - b0 on x*D) and the
  residuals are the split-sample residuals.  Hence, when the clusters are nested in the
  groups (or with HC1, where each row is a cluster), the meat is block-diagonal too, the
  two estimates are uncorrelated and, exactly (tested to 1e-10),

      se(b1 - b0)^2 = c_pool (se_0^2 / c_0 + se_1^2 / c_1),

  c the small-sample factor of each fit (``ssc_factor``: G/(G-1) (N-1)/(N-K) for CRV1,
  N/(N-K) for HC1, with N, G and K of that fit - K_pool = K_0 + K_1 when the unit FE is
  nested in the clusters).  Only with the corrections switched off
  (``SSC(k_adj=False, G_adj=False)``) is it se_0^2 + se_1^2 (``se_naive``); with them
  the two differ slightly (their factors count different N, G and K).  iid errors have no
  such identity (the pooled model pools the two residual variances).  When clusters
  straddle the groups (province clusters holding key and ordinary cities) the two
  estimates are correlated and only the pooled test is right;
* :func:`permutation_test` - Fisher's exact test of "the labels do not matter":
  the group labels are permuted across units (see :mod:`.group_batch` for the one SQL
  batch that re-estimates both split-sample coefficients of every draw).
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .formula import Formula, parse_formula
from .group_batch import batch_diffs, permutation_sample
from .model import feols
from .result import FeolsResult
from .sqlutil import TempScope, quote_ident, resolve_relation, temp_scope
from .vcov import SSC, VcovSpec, parse_vcov

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


# ------------------------------------------------------------------ results

@dataclass
class GroupDifference:
    """b_g1 - b_g0 of ``term``, tested in the fully interacted pooled model."""

    term: str
    group: str
    labels: tuple  # (g0, g1): the difference is b_g1 - b_g0
    coef: dict  # label -> split-sample coefficient
    se: dict  # label -> split-sample SE (each fit's own small-sample factor)
    nobs: dict  # label -> observations of the split fit
    difference: float  # pooled interaction coefficient = b_g1 - b_g0
    se_difference: float
    t: float
    p: float
    df_t: int
    ci_low: float
    ci_high: float
    pooled_term: str  # the interaction's name in the pooled model
    vcov: str
    se_naive: float  # sqrt(se_0^2 + se_1^2): ignores the covariance and the pooled corrections
    se_from_split: float | None  # sqrt(c_pool sum se_g^2 / c_g): = se_difference when clusters nest in groups
    clusters_nested: bool | None  # every cluster within one group (HC1: True; iid, two-way: None)
    identity_gap: float  # max |pooled - split| over all coefficients of both groups
    split: dict = field(default_factory=dict, repr=False)  # label -> FeolsResult
    pooled: FeolsResult | None = field(default=None, repr=False)

    def frame(self) -> pd.DataFrame:
        """One row per group: group, coef, se, ci_low, ci_high, nobs (split-sample fits)."""
        rows = []
        for g in self.labels:
            fit = self.split[g]
            ci = fit.conf_int.loc[self.term]
            rows.append({"group": g, "coef": self.coef[g], "se": self.se[g], "ci_low": float(ci["ci_low"]),
                         "ci_high": float(ci["ci_high"]), "nobs": self.nobs[g]})
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        g0, g1 = self.labels
        return {
            "term": self.term, "group": self.group, "g0": g0, "g1": g1,
            "coef_g0": self.coef[g0], "coef_g1": self.coef[g1], "se_g0": self.se[g0], "se_g1": self.se[g1],
            "nobs_g0": self.nobs[g0], "nobs_g1": self.nobs[g1],
            "difference": self.difference, "se_difference": self.se_difference, "t": self.t, "p": self.p,
            "df_t": self.df_t, "ci_low": self.ci_low, "ci_high": self.ci_high, "vcov": self.vcov,
            "se_naive": self.se_naive, "se_from_split": self.se_from_split,
            "clusters_nested": self.clusters_nested, "identity_gap": self.identity_gap,
        }

    def plot(self, path: str | Path, pooled_coef: float, title: str | None = None) -> Path:
        """The two split estimates with CIs; ``pooled_coef`` (the common-slope model) dashed."""
        from .figures import group_coefficient_figure

        return group_coefficient_figure(
            self.frame(), pooled_coef, Path(path),
            title or f"{self.term} by {self.group}: difference {self.difference:.4g} (p = {self.p:.3f})")


@dataclass
class PermutationResult:
    """Fisher permutation test of b_g1 - b_g0, labels permuted across units."""

    term: str
    group: str
    labels: tuple  # (g0, g1)
    observed: float  # b_g1 - b_g0 of the split-sample fits (feols)
    draws: np.ndarray  # b_g1 - b_g0 per draw (NaN: the term collinear in a pseudo-group)
    coefs: np.ndarray  # (draws, 2): b_g0, b_g1 per draw
    p_value: float  # share of valid draws with |diff_d| >= |observed|
    p_value_plus1: float  # (1 + count) / (1 + valid draws): never 0
    n_draws: int
    n_valid: int
    seed: int | None
    method: str  # "sql" (one batch) or "loop" (feols refits)
    elapsed_s: float
    strata: str | None = None
    note: str = ""  # why the loop was used
    observed_batch: float = float("nan")  # the batch's own draw 0 (the actual labels), "sql" only
    units: np.ndarray | None = field(default=None, repr=False)  # unit ids, the columns of ``assignments``
    assignments: np.ndarray | None = field(default=None, repr=False)  # (draws, units) 0/1: g0/g1 per draw

    def summary(self) -> dict:
        d = self.draws[np.isfinite(self.draws)]
        return {
            "term": self.term, "group": self.group, "g0": self.labels[0], "g1": self.labels[1],
            "observed": self.observed, "p_value": self.p_value, "p_value_plus1": self.p_value_plus1,
            "draws": self.n_draws, "valid_draws": self.n_valid, "seed": self.seed, "strata": self.strata,
            "method": self.method, "note": self.note,
            "draws_mean": float(d.mean()) if d.size else float("nan"),
            "draws_sd": float(d.std(ddof=1)) if d.size > 1 else float("nan"),
            "elapsed_s": self.elapsed_s,
        }


# ------------------------------------------------------------------ groups in SQL

@dataclass
class _Levels:
    """The group's distinct values, ranked 1..L in a temp table ``table(v, r)``."""

    table: str
    values: list  # values[r - 1]
    group: str  # quoted column

    def rank(self, label) -> int:
        for r, v in enumerate(self.values, start=1):
            if v == label:
                return r
        raise ValueError(f"{label!r} is not a value of the group column (values: {self.values})")

    def rows(self, source: str, rank: int) -> str:
        # rank is an integer produced here, not data: safe as SQL text
        return f"SELECT * FROM {source} WHERE {self.group} = (SELECT v FROM {self.table} WHERE r = {int(rank)})"


def _levels(con, scope: TempScope, source: str, group: str) -> _Levels:
    g = quote_ident(group)
    table = scope.table("levels")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT v, row_number() OVER (ORDER BY v) AS r "
                f"FROM (SELECT DISTINCT {g} AS v FROM {source} WHERE {g} IS NOT NULL)")
    values = [row[0] for row in con.execute(f"SELECT v FROM {table} ORDER BY r").fetchall()]
    if not values:
        raise ValueError(f"the group column {group!r} has no non-NULL value")
    return _Levels(table, values, g)


def _pair(lv: _Levels, levels: Sequence | None) -> tuple[tuple, tuple[int, int]]:
    """(g0, g1) and their ranks: ``levels`` or the two values of a binary group."""
    if levels is None:
        if len(lv.values) != 2:
            raise ValueError(f"the group has {len(lv.values)} values {lv.values[:10]}; pass levels=(g0, g1)")
        pair = tuple(lv.values)
    else:
        pair = tuple(levels)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError("levels must be two distinct values (g0, g1)")
    return pair, (lv.rank(pair[0]), lv.rank(pair[1]))


def _default_vcov(fml: Formula, vcov):
    """CRV1 by the first fixed effect (the unit, by the formula's convention); iid without FE."""
    if vcov is not None:
        return vcov
    return {"CRV1": fml.fe[0]} if fml.fe else "iid"


def _fit_groups(con, source, lv: _Levels, labels, formula, vcov, weights, ssc) -> dict:
    return {g: feols(con, lv.rows(source, lv.rank(g)), formula, vcov=vcov, weights=weights, ssc=ssc)
            for g in labels}


def _given_fits(fits: Mapping, labels, fml: Formula, weights: str | None, spec: VcovSpec | None) -> dict:
    """The caller's split-sample fits of (g0, g1), checked to be of ``fml`` (and of ``spec`` and
    ``weights`` when the variance matters). The sample must be the one the function would fit:
    the rows of the group, the same listwise deletion."""
    out = {}
    for g in labels:
        if g not in fits:
            raise ValueError(f"fits has no fit for the group {g!r}")
        fit = fits[g]
        if fit.formula != str(fml) or fit.weights != weights:
            raise ValueError(f"the fit of {g!r} is not of {str(fml)!r} (weights {weights!r})")
        if spec is not None and (fit.vcov != spec.kind or fit.cluster != (spec.cluster_label if spec.kind == "CRV1"
                                                                             else None)):
            raise ValueError(f"the fit of {g!r} has another variance ({fit.vcov}, cluster {fit.cluster})")
        if spec is None and fit.cluster is not None and not set(fit.cluster.split("+")) <= set(fml.fe):
            # a cluster column that is not a fixed effect could have removed rows (NULL clusters)
            raise ValueError(f"the fit of {g!r} is clustered by {fit.cluster}, not a fixed effect")
        out[g] = fit
    return out


def split_sample(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    group: str,
    vcov: str | Mapping[str, str] | None = None,
    weights: str | None = None,
    *,
    ssc: SSC | None = None,
) -> dict:
    """``formula`` fitted separately on each value of ``group``: ``{label: FeolsResult}``.

    Labels in sorted order; rows with a NULL group are left out.  ``vcov`` defaults to
    CRV1 by the formula's first fixed effect (iid without fixed effects).
    """
    fml = parse_formula(formula)
    vcov = _default_vcov(fml, vcov)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        lv = _levels(con, scope, source, group)
        return _fit_groups(con, source, lv, lv.values, formula, vcov, weights, ssc)


# ------------------------------------------------------------------ the pooled (Chow) model

def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _plain_rhs(fml: Formula, what: str) -> None:
    if fml.factors:
        raise NotImplementedError(f"{what} supports plain-column regressors only, not i() terms")


def _interacted(con, scope, source, fml: Formula, group: str, lv: _Levels, ranks, clusters, weights):
    """The pooled table (rows of g0 and g1 only) and its fully interacted formula."""
    tag = group if _NAME.match(group) else "g"
    taken = {fml.y, *fml.x, *fml.fe, *clusters, *([weights] if weights else [])}
    inter = {x: _fresh(f"{x}_x_{tag}", taken) for x in fml.x}
    fe_key = {f: _fresh(f"{f}_x_{tag}", taken) for f in fml.fe}
    dummy = None if fml.fe else _fresh(f"{tag}_is_g1", taken)
    q = quote_ident
    cols = [f"s.{q(c)}" for c in dict.fromkeys([fml.y, *fml.x, *fml.fe, *clusters, *([weights] if weights else [])])]
    d = "CAST(lv.r = ? AS DOUBLE)"
    cols += [f"CAST(s.{q(x)} AS DOUBLE) * {d} AS {q(name)}" for x, name in inter.items()]
    # the group x FE key: one level per (group, FE level), so each group has its own effects
    # (|| not concat_ws: a NULL FE value must stay NULL, so the row is dropped as in the split fit)
    cols += [f"CAST(lv.r AS VARCHAR) || '|' || CAST(s.{q(f)} AS VARCHAR) AS {q(name)}" for f, name in fe_key.items()]
    params = [ranks[1]] * len(inter)
    if dummy:
        cols.append(f"{d} AS {q(dummy)}")
        params.append(ranks[1])
    table = scope.table("pooled")
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(cols)} FROM {source} s "
                f"JOIN {lv.table} lv ON s.{lv.group} = lv.v WHERE lv.r IN (?, ?)", params + list(ranks))
    rhs = [*([dummy] if dummy else []), *fml.x, *inter.values()]
    pooled = f"{fml.y} ~ {' + '.join(rhs)}" + (f" | {' + '.join(fe_key.values())}" if fml.fe else "")
    return table, pooled, inter


def _clusters_nested(con, source, lv: _Levels, ranks, spec: VcovSpec) -> bool | None:
    """Is every cluster within one group?  HC1: yes (each row its own cluster); None: iid, two-way."""
    if spec.kind == "hetero":
        return True
    if spec.kind != "CRV1" or len(spec.clusters) != 1:
        return None
    c = quote_ident(spec.clusters[0])
    (mx,) = con.execute(
        f"SELECT max(n) FROM (SELECT count(DISTINCT lv.r) AS n FROM {source} s "
        f"JOIN {lv.table} lv ON s.{lv.group} = lv.v WHERE lv.r IN (?, ?) GROUP BY s.{c})", list(ranks)
    ).fetchone()
    return bool(mx == 1)


def interaction_test(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    group: str,
    term: str,
    vcov: str | Mapping[str, str] | None = None,
    *,
    levels: Sequence | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
    fits: Mapping | None = None,
) -> GroupDifference:
    """Test b_g1 = b_g0 for ``term`` in the fully interacted pooled model (see the module doc).

    ``group`` is binary, or ``levels=(g0, g1)`` picks two of its values (the other rows are
    left out).  ``vcov`` defaults to CRV1 by the formula's first fixed effect.  Returns the
    split-sample estimates, the pooled interaction coefficient (= b_g1 - b_g0) with its
    t, p and CI, and the identity checks (``identity_gap``, ``se_from_split``).
    ``fits``: the split-sample fits ``{g0: ..., g1: ...}`` when the caller has them (e.g.
    :func:`split_sample`'s with the same ``vcov``, ``weights`` and ``ssc``): used, not refitted.
    """
    fml = parse_formula(formula)
    _plain_rhs(fml, "interaction_test")
    if term not in fml.x:
        raise ValueError(f"{term!r} is not a regressor of {formula!r}")
    vcov = _default_vcov(fml, vcov)
    spec = parse_vcov(vcov)
    clusters = list(spec.clusters) if spec.kind == "CRV1" else []
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        lv = _levels(con, scope, source, group)
        labels, ranks = _pair(lv, levels)
        split = (_fit_groups(con, source, lv, labels, formula, vcov, weights, ssc) if fits is None
                 else _given_fits(fits, labels, fml, weights, spec))
        _check_term(split, term)
        table, pooled_fml, inter = _interacted(con, scope, source, fml, group, lv, ranks, clusters, weights)
        pooled = feols(con, table, pooled_fml, vcov=vcov, weights=weights, ssc=ssc)
        nested = _clusters_nested(con, source, lv, ranks, spec)
    g0, g1 = labels
    pt = inter[term]
    if pt not in pooled.coef.index:  # pragma: no cover - the split fits would have failed first
        raise ValueError(f"the interaction {pt!r} is collinear in the pooled model")
    coef = {g: float(split[g].coef[term]) for g in labels}
    se = {g: float(split[g].se[term]) for g in labels}
    ci = pooled.conf_int.loc[pt]
    # the exact identity of the module doc, when the meat is block-diagonal
    from_split = (float(np.sqrt(pooled.ssc_factor * sum(se[g] ** 2 / split[g].ssc_factor for g in labels)))
                  if nested else None)
    return GroupDifference(
        term=term, group=group, labels=labels, coef=coef, se=se,
        nobs={g: int(split[g].nobs) for g in labels},
        difference=float(pooled.coef[pt]), se_difference=float(pooled.se[pt]), t=float(pooled.tstat[pt]),
        p=float(pooled.pvalue[pt]), df_t=pooled.df_t, ci_low=float(ci["ci_low"]), ci_high=float(ci["ci_high"]),
        pooled_term=pt, vcov=pooled.vcov if pooled.cluster is None else f"{pooled.vcov} by {pooled.cluster}",
        se_naive=float(np.hypot(se[g0], se[g1])),
        se_from_split=from_split,
        clusters_nested=nested,
        identity_gap=_identity_gap(split, pooled, labels, inter),
        split=split, pooled=pooled,
    )


def _check_term(fits: dict, term: str) -> None:
    for g, fit in fits.items():
        if term not in fit.coef.index:
            raise ValueError(f"{term!r} is collinear with the fixed effects in group {g!r}")


def _identity_gap(split, pooled: FeolsResult, labels, inter: dict) -> float:
    """max |pooled - split| over every coefficient: b_g0 = b[x], b_g1 = b[x] + b[x*D]."""
    g0, g1 = labels
    gaps = [0.0]
    for x, xd in inter.items():
        if x in split[g0].coef.index and x in pooled.coef.index:
            gaps.append(abs(pooled.coef[x] - split[g0].coef[x]))
            if x in split[g1].coef.index and xd in pooled.coef.index:
                gaps.append(abs(pooled.coef[x] + pooled.coef[xd] - split[g1].coef[x]))
    return float(max(gaps))


# ------------------------------------------------------------------ Fisher's permutation test

def permute_labels(labels: np.ndarray, draws: int, rng: np.random.Generator,
                   strata: np.ndarray | None = None) -> np.ndarray:
    """(draws, units): each row a random permutation of the units' labels (within strata)."""
    labels = np.asarray(labels)
    out = np.empty((draws, labels.size), dtype=labels.dtype)
    blocks = [np.arange(labels.size)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for idx in blocks:
        out[:, idx] = rng.permuted(np.tile(labels[idx], (draws, 1)), axis=1)
    return out


def permutation_test(
    con: duckdb.DuckDBPyConnection,
    relation,
    formula: str,
    group: str,
    term: str,
    unit: str,
    draws: int = 1000,
    seed: int | None = None,
    strata: str | None = None,
    *,
    levels: Sequence | None = None,
    collin_tol: float = 1e-10,
    fits: Mapping | None = None,
) -> PermutationResult:
    """Fisher's permutation test of b_g1 - b_g0 (split-sample estimates of ``term``).

    Each draw permutes the group labels across units (a unit keeps its label in all its
    periods; the number of units per group is fixed; within ``strata``, a unit-level
    column, when given) and re-estimates both split-sample coefficients.  The p-value is
    the share of draws with |diff_d| >= |diff_observed|; ``p_value_plus1`` counts the
    observed labels as a draw.  Draws in which ``term`` is collinear within a pseudo-group
    are NaN and left out of both.  Permutations: numpy ``default_rng(seed)``.

    ``method="sql"`` - one DuckDB batch for all draws (:mod:`.group_batch`) - needs the
    fixed effects ``unit`` (+ one period FE, on a balanced panel), plain-column regressors;
    otherwise (unbalanced panels, other FE structures, i() terms) every draw is two feols
    refits (``method="loop"``, the reason in ``note``), far slower.  Unweighted; the
    per-draw fits need coefficients only, so no variance is computed. ``fits``: the unweighted
    split-sample fits ``{g0: ..., g1: ...}`` when the caller has them (any variance clustered by
    fixed effects only, e.g. :func:`split_sample`'s): their coefficients are used, not refitted.
    """
    t0 = _time.perf_counter()
    fml = parse_formula(formula)
    if term not in fml.x:
        raise ValueError(f"{term!r} is not a regressor of {formula!r}")
    if draws < 1:
        raise ValueError("draws must be >= 1")
    rng = np.random.default_rng(seed)
    with temp_scope(con) as scope:
        source = resolve_relation(relation, scope)
        lv = _levels(con, scope, source, group)
        labels, ranks = _pair(lv, levels)
        fits = (_fit_groups(con, source, lv, labels, formula, "iid", None, None) if fits is None
                else _given_fits(fits, labels, fml, None, None))
        _check_term(fits, term)
        observed = float(fits[labels[1]].coef[term] - fits[labels[0]].coef[term])
        ps = permutation_sample(con, scope, source, fml, unit, lv, ranks, strata)
        A = permute_labels(ps.labels, draws, rng, ps.strata)
        note = ps.note
        if not note and any(f.dropped for f in fits.values()):
            note = "a regressor is collinear with the fixed effects in the observed split"
        if not note:
            coefs = batch_diffs(con, scope, ps, np.vstack([ps.labels[None, :], A]), fml.x.index(term), collin_tol)
            obs_batch, coefs = float(coefs[0, 1] - coefs[0, 0]), coefs[1:]
        else:
            obs_batch, coefs = float("nan"), _loop_coefs(con, scope, formula, unit, term, ps, A)
    diffs = coefs[:, 1] - coefs[:, 0]
    valid = np.isfinite(diffs)
    # A draw that reproduces the real labels differs from the refit by rounding only (~1e-15):
    # count it as a tie, as the exact arithmetic would.
    hits = int(np.sum(np.abs(diffs[valid]) >= abs(observed) * (1 - 1e-9)))
    n_valid = int(valid.sum())
    return PermutationResult(
        term=term, group=group, labels=labels, observed=observed, draws=diffs, coefs=coefs,
        p_value=hits / n_valid if n_valid else float("nan"), p_value_plus1=(1 + hits) / (1 + n_valid),
        n_draws=int(draws), n_valid=n_valid, seed=seed, method="loop" if note else "sql",
        elapsed_s=_time.perf_counter() - t0, strata=strata, note=note, observed_batch=obs_batch,
        units=ps.units, assignments=A,
    )


def _loop_coefs(con, scope, formula, unit, term, ps, A: np.ndarray) -> np.ndarray:
    """Two feols refits per draw on the pseudo-groups (the fallback; coefficients only)."""
    d_idx, u_idx = np.indices(A.shape)
    frame = pd.DataFrame({"__draw": d_idx.ravel().astype(np.int32), "__unit": ps.units[u_idx.ravel()],
                          "__lab": A.ravel().astype(np.int8)})
    asg = scope.table("asg")
    con.execute(f"CREATE TEMP TABLE {asg} AS SELECT * FROM {scope.register(frame, 'asg_df')}")
    rows = f"SELECT s.* FROM ({ps.restricted}) s JOIN {asg} a ON s.{quote_ident(unit)} = a.__unit"
    out = np.full((A.shape[0], 2), np.nan)
    for d in range(A.shape[0]):
        for k in (0, 1):
            try:  # d and k are loop counters, not data: safe as SQL text
                fit = feols(con, f"{rows} WHERE a.__draw = {d} AND a.__lab = {k}", formula, vcov="iid")
            except ValueError:  # e.g. every regressor collinear in the pseudo-group
                continue
            if term in fit.coef.index:
                out[d, k] = float(fit.coef[term])
    return out
