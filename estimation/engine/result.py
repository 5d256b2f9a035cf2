"""The result object returned by :func:`estimation.feols`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .inference import WaldTest, t_inference, wald_test


@dataclass
class FeolsResult:
    """Estimates and inference of one linear (fixed-effects) regression.

    Vectors are pandas Series indexed by term name (``Intercept`` first for
    models without fixed effects); ``conf_int`` is a DataFrame with columns
    ``ci_low``/``ci_high`` at level ``1 - alpha`` (95% by default).
    """

    formula: str
    depvar: str
    regressors: tuple[str, ...]  # as requested (before collinearity drops)
    fixef: tuple[str, ...]
    coef: pd.Series
    se: pd.Series
    tstat: pd.Series
    pvalue: pd.Series
    conf_int: pd.DataFrame
    vcov_matrix: pd.DataFrame
    vcov: str  # "iid" | "hetero" | "CRV1"
    cluster: str | None
    n_clusters: int | None
    nobs: int
    df_t: int
    df_k: int
    ssc_factor: float
    r2: float
    r2_within: float  # NaN for models without fixed effects
    adj_r2: float
    adj_r2_within: float
    rmse: float
    ssr: float
    dropped: list[str]  # collinear regressors removed from the model
    weights: str | None = None
    alpha: float = 0.05
    n_missing: int = 0  # rows dropped for NULL/NaN in a model column
    n_singletons: int = 0  # rows dropped as fixed-effect singletons
    demean_method: str = ""
    demean_iterations: int = 0
    elapsed_s: float = 0.0
    fstat: float = float("nan")  # Wald F that every slope is zero, with this vcov
    f_pvalue: float = float("nan")
    f_df: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def terms(self) -> list[str]:
        return list(self.coef.index)

    @property
    def has_fixef(self) -> bool:
        return len(self.fixef) > 0

    def wald_test(self, terms) -> WaldTest:
        """Joint Wald/F test that the coefficients ``terms`` are all zero."""
        terms = [terms] if isinstance(terms, str) else list(terms)
        missing = [t for t in terms if t not in self.coef.index]
        if missing:
            raise KeyError(f"terms not in the model: {missing}")
        idx = [self.terms.index(t) for t in terms]
        return wald_test(self.coef.to_numpy(), self.vcov_matrix.to_numpy(), idx, self.df_t, tuple(terms))

    def tidy(self, alpha: float | None = None) -> pd.DataFrame:
        """One row per term: ``term, coef, se, t, p, ci_low, ci_high``."""
        if alpha is None or alpha == self.alpha:
            lo, hi = self.conf_int["ci_low"].to_numpy(), self.conf_int["ci_high"].to_numpy()
        else:
            _, _, lo, hi = t_inference(self.coef.to_numpy(), self.se.to_numpy(), self.df_t, alpha)
        return pd.DataFrame(
            {
                "term": self.terms,
                "coef": self.coef.to_numpy(),
                "se": self.se.to_numpy(),
                "t": self.tstat.to_numpy(),
                "p": self.pvalue.to_numpy(),
                "ci_low": np.asarray(lo),
                "ci_high": np.asarray(hi),
            }
        )

    method = "feols"  # the estimator's name in summaries (2SLS for IVResult)

    def summary(self, digits: int = 4) -> str:
        """A compact plain-text summary."""
        lines = [f"{self.method}: {self.formula}"]
        inf = self.vcov if self.cluster is None else f"{self.vcov} by {self.cluster}"
        lines.append(
            f"N = {self.nobs:,}   vcov = {inf}   t df = {self.df_t}"
            + (f"   clusters = {self.n_clusters}" if self.n_clusters else "")
        )
        tab = self.tidy()
        lines.append(tab.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))
        r2 = f"R2 = {self.r2:.{digits}f}"
        if self.f_df:
            r2 += f"   F({self.f_df[0]}, {self.f_df[1]}) = {self.fstat:.{digits}f} (p = {self.f_pvalue:.{digits}g})"
        if self.has_fixef and self.r2_within == self.r2_within:  # not NaN
            r2 += f"   within R2 = {self.r2_within:.{digits}f}"
        lines.append(r2)
        if self.dropped:
            lines.append("dropped (collinear): " + ", ".join(self.dropped))
        if self.n_singletons:
            lines.append(f"singleton observations removed: {self.n_singletons}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
