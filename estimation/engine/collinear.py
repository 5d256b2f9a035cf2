"""Detect collinear regressors from the Gram matrix X'X.

Sequential (un-pivoted, in the regressors' order) Cholesky factorisation:
for column j, ``r_jj = X'X[j,j] - sum_{i<j kept} R[i,j]^2`` is the sum of
squares of x_j left after projecting it on the fixed effects (the demeaning)
and the earlier kept regressors.  Column j is declared collinear and dropped
when ``r_jj <= tol * ref[j]``, where ``ref[j]`` is the raw (un-demeaned,
uncentred) sum of squares ``sum w x_j^2`` of the column.  Measuring against
the raw scale makes variables absorbed by the fixed effects (e.g. a
time-invariant regressor with unit effects, whose demeaned values are pure
rounding noise) look as collinear as they are, independent of units.

As in fixest/pyfixest, the *later* of a collinear set is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def find_collinear(
    xtx: np.ndarray, ref_ss: Sequence[float], tol: float = 1e-10
) -> list[int]:
    """Return the indices (into xtx) of columns to drop."""
    k = xtx.shape[0]
    r = np.zeros((k, k))
    kept: list[int] = []
    dropped: list[int] = []
    for j in range(k):
        rjj = xtx[j, j] - sum(r[i, j] ** 2 for i in kept)
        ref = float(ref_ss[j])
        if ref <= 0.0 or not np.isfinite(rjj) or rjj <= tol * ref:
            dropped.append(j)
            continue
        d = np.sqrt(rjj)
        r[j, j] = d
        for m in range(j + 1, k):
            r[j, m] = (xtx[j, m] - sum(r[i, j] * r[i, m] for i in kept)) / d
        kept.append(j)
    return dropped
