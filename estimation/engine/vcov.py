"""Variance estimators and small-sample corrections (pyfixest 0.60 defaults).

The corrections follow ``pyfixest.utils.utils.get_ssc`` and the calls in
``pyfixest.estimation.models.feols_.Feols.vcov`` (see docs/methods.md):

* ``df_k`` (the "K" in (N-1)/(N-K)) with ``k_fixef="nonnested"``:
  ``k + k_fe_adj - k_fe_nested + n_fe_fully_nested`` where ``k`` counts the
  estimated (non-collinear) coefficients, ``k_fe_adj = sum(levels) - (n_fe-1)``
  and the nested terms are only non-zero for cluster-robust errors;
* iid:    V = (N-1)/(N-df_k) * SSR/(N-1) * (X'X)^-1,  t df = N - df_k
* hetero: V = N/(N-df_k) * B M B,                     t df = N - df_k
* CRV1:   V = G/(G-1) * (N-1)/(N-df_k) * B M B,       t df = G - 1
* two-way CRV1 (clusters A and B): M = M_A + M_B - M_{A x B} (Cameron,
  Gelbach and Miller), one factor with G = min(G_A, G_B) (pyfixest's default
  ``G_df="min"``), t df = min(G_A, G_B) - 1; a fixed effect is "nested" when
  it is nested in A or in B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SSC:
    """Small-sample correction switches, named as in ``pyfixest.ssc``.

    ``k_adj``: apply (N-1)/(N-df_k) (N/(N-df_k) for hetero);
    ``k_fixef``: how fixed effects enter df_k - ``"nonnested"`` (pyfixest
    default), ``"full"`` (all FE levels, as linearmodels/Stata areg) or
    ``"none"``; ``G_adj``: apply G/(G-1) to cluster-robust errors.
    """

    k_adj: bool = True
    k_fixef: str = "nonnested"
    G_adj: bool = True

    def __post_init__(self) -> None:
        if self.k_fixef not in ("none", "full", "nonnested"):
            raise ValueError("k_fixef must be 'none', 'full' or 'nonnested'")


@dataclass(frozen=True)
class VcovSpec:
    kind: str  # "iid" | "hetero" | "CRV1"
    cluster: str | None = None  # the first cluster column
    clusters: tuple[str, ...] = ()  # all cluster columns (two for two-way)

    def __post_init__(self) -> None:
        if self.cluster is not None and not self.clusters:
            object.__setattr__(self, "clusters", (self.cluster,))

    @property
    def cluster_label(self) -> str | None:
        return "+".join(self.clusters) if self.clusters else None

    @property
    def description(self) -> str:
        if self.kind == "iid":
            return "IID standard errors"
        if self.kind == "hetero":
            return "Heteroskedasticity-robust (HC1) standard errors"
        if len(self.clusters) == 2:
            return f"Standard errors clustered two-way by {self.clusters[0]} and {self.clusters[1]}"
        return f"Standard errors clustered by {self.cluster}"


def parse_vcov_text(text: str) -> str | dict[str, str]:
    """The command-line form: ``iid``, ``HC1``/``hetero``, ``CRV1:col`` or ``CRV1:a+b``."""
    t = text.strip()
    if t.upper().startswith("CRV1:"):
        return {"CRV1": t.split(":", 1)[1].strip()}
    return t


def parse_vcov(vcov: str | Mapping[str, str] | None) -> VcovSpec:
    if vcov is None:
        return VcovSpec("iid")
    if isinstance(vcov, str):
        v = vcov.strip()
        if v.lower() == "iid":
            return VcovSpec("iid")
        if v.lower() in ("hetero", "hc1"):
            return VcovSpec("hetero")
        raise ValueError(f"unsupported vcov {vcov!r}: use 'iid', 'hetero'/'HC1' or {{'CRV1': col}}")
    if isinstance(vcov, Mapping):
        if len(vcov) != 1:
            raise ValueError("vcov dict must have exactly one entry, e.g. {'CRV1': 'city_code'}")
        ((key, col),) = vcov.items()
        if key != "CRV1":
            raise ValueError(f"unsupported clustered vcov {key!r}: only 'CRV1' is implemented")
        cols = [c.strip() for c in col.split("+")] if isinstance(col, str) else list(col)
        if not 1 <= len(cols) <= 2 or not all(isinstance(c, str) and c for c in cols):
            raise ValueError("CRV1 takes one cluster column or two joined by '+' (two-way)")
        if len(set(cols)) != len(cols):
            raise ValueError("the two cluster columns must differ")
        return VcovSpec("CRV1", cols[0], tuple(cols))
    raise TypeError("vcov must be a string or a dict like {'CRV1': 'col'}")


def df_k(
    ssc: SSC,
    k: int,
    fe_levels: Sequence[int],
    fe_nested: Sequence[bool] = (),
) -> int:
    """Degrees of freedom used by the model, as pyfixest ``get_ssc`` counts them.

    ``fe_nested`` flags fixed effects nested in the cluster variable (pass an
    empty/False sequence for iid and hetero errors, as pyfixest does).
    """
    n_fe = len(fe_levels)
    k_fe = int(sum(fe_levels))
    k_fe_adj = k_fe - (n_fe - 1) if n_fe > 1 else k_fe
    if n_fe == 0 or ssc.k_fixef == "none":
        return k
    if ssc.k_fixef == "full":
        return k + k_fe_adj
    nested = list(fe_nested) or [False] * n_fe
    n_fully = sum(bool(b) for b in nested)
    k_fe_nested = sum(lv for lv, b in zip(fe_levels, nested) if b)
    if k_fe_nested == 0:
        return k + k_fe_adj
    return k + k_fe_adj - k_fe_nested + n_fully


@dataclass(frozen=True)
class Correction:
    """The small-sample factor applied to a variance, the K it counts and the t degrees of freedom."""

    factor: float
    df_k: int
    df_t: int


def small_sample_correction(
    spec: VcovSpec,
    ssc: SSC,
    nobs: int,
    k: int,
    fe_levels: Sequence[int],
    fe_nested: Sequence[bool],
    n_clusters: int | None,
) -> Correction:
    """The factor multiplying SSR/(N-1) (X'X)^-1 (iid) or B M B (hetero, CRV1).

    One definition for every estimator (the regression, each placebo draw, ...):
    iid (N-1)/(N-df_k), hetero N/(N-df_k), CRV1 G/(G-1) (N-1)/(N-df_k), each switch of
    ``ssc`` honoured.
    """
    n = nobs
    dk_check = df_k(ssc if ssc.k_fixef != "none" else SSC(k_fixef="full"), k, fe_levels)
    if n - dk_check <= 0:
        raise ValueError(
            f"no residual degrees of freedom: N = {n} observations, {k} coefficients and "
            f"{dk_check - k} fixed-effect parameters"
        )
    if spec.kind == "iid":
        dk = df_k(ssc, k, fe_levels)
        return Correction((n - 1) / (n - dk) if ssc.k_adj else 1.0, dk, n - dk)
    if spec.kind == "hetero":
        dk = df_k(ssc, k, fe_levels)
        return Correction(n / (n - dk) if ssc.k_adj else 1.0, dk, n - dk)
    if spec.kind == "CRV1":
        dk = df_k(ssc, k, fe_levels, fe_nested)
        g = int(n_clusters)
        if g < 2:
            raise ValueError("cluster-robust errors need at least two clusters")
        adj = (n - 1) / (n - dk) if ssc.k_adj else 1.0
        if ssc.G_adj:
            adj *= g / (g - 1)
        return Correction(adj, dk, g - 1)
    raise ValueError(f"unknown vcov kind {spec.kind!r}")


@dataclass
class VcovResult:
    matrix: np.ndarray
    ssc_factor: float
    df_k: int
    df_t: int


def compute_vcov(
    spec: VcovSpec,
    ssc: SSC,
    bread: np.ndarray,
    ssr: float,
    meat: np.ndarray | None,
    nobs: int,
    k: int,
    fe_levels: Sequence[int],
    fe_nested: Sequence[bool],
    n_clusters: int | None,
) -> VcovResult:
    """Assemble V from bread = (X'X)^-1, the SSR / meat and the corrections.

    For two-way clustering pass the combined meat M_A + M_B - M_AB and
    ``n_clusters = min(G_A, G_B)``.
    """
    c = small_sample_correction(spec, ssc, nobs, k, fe_levels, fe_nested, n_clusters)
    if spec.kind == "iid":
        matrix = c.factor * ssr / (nobs - 1) * bread
    else:
        matrix = c.factor * (bread @ meat @ bread)
    return VcovResult(matrix, c.factor, c.df_k, c.df_t)
