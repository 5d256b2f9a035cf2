"""Demeaning by any number of fixed effects: conjugate gradient on the FE normal equations.

For columns v (y and the regressors, centred), weights w and the dummy matrices D_1..D_Q
of the fixed effects, the demeaned column is the weighted least-squares residual

    v~ = v - D a,   D = [D_1 ... D_Q],   (D'WD) a = D'W v   (the FE normal equations).

**Eliminating the largest fixed effect.** Let e be the fixed effect with the most levels
(the workers of a worker-firm panel) and K the others. Its block D_e'WD_e is diagonal, so
a_e = (D_e'WD_e)^-1 D_e'W (v - D_K a_K) exactly - a weighted group mean - and a_K solves
the Schur complement system

    S a_K = D_K'W M_e v,   S = D_K'W M_e D_K,

where M_e u = u - (weighted mean of u within the level of e) is the within transformation
of e.  S is symmetric positive semi-definite (singular: one constant per extra fixed
effect, more on disconnected or nested designs) and the system is consistent, so the
conjugate-gradient method started at a_K = 0 converges; every solution gives the same
demeaned column v~ = M_e (v - D_K a_K).

**Preconditioner.** The exact diagonal of S: for level l of a kept FE,
S_ll = sum over levels g of e of n_gl (m_g - n_gl) / m_g, with n_gl the weight of the
rows in both g and l and m_g the weight of g (every term >= 0, zero when all of g's rows
are in l), floored at 1e-6 x (the weight of l).

**Null directions.** S is singular, and CG on a singular system survives rounding only
if the residual stays in the range of S. Two kinds of null direction are known and
removed exactly: (1) the all-ones vector of every kept FE (the eliminated FE absorbs any
constant): the right-hand side and each S p are centred within every kept FE; (2) a level
l whose rows are all explained by e (every e-group touching l lies inside l: a firm with
only stayers, a FE nested in e): S_ll = 0, found with exact row counts, and the level is
kept out of the iteration (its coefficient stays 0).  Without (1) or (2) the iteration
drifted along these directions on some panels and never converged (measured, see
:func:`remove_constant_directions` and :func:`schur_diagonal`).  Null directions of
disconnected components (several levels each) are not removed; they carry far smaller
rounding residues (1M-row AKM panel: 32 worker-firm components, no effect measured).

Where the work happens:

* O(N), in DuckDB SQL: the rows are collapsed once to their distinct FE combinations
  ("cells", with the cells' weight totals). One CG iteration is one statement over the
  cells: joins to the search direction p (one per kept FE), s = D_K p per cell, the
  weighted mean of s within each level of e (GROUP BY, joined back), r = s - mean, and
  sum(w r) by the level of every kept FE plus max |r| (``UNION ALL`` of GROUP BYs).
  The right-hand side and the demeaned table are the same statement over the sample rows.
* In numpy: only vectors of the size of the kept FE levels (a_K, p, the CG residual, the
  preconditioner) and per-column scalars.

**The explicit operator** (the default when it is affordable, :func:`schur_matrix`). S itself
is a sparse matrix over the kept levels only (firms and years of a worker-firm panel, not the
rows): D_K'WD_K (level weights and cross-FE co-occurrence weights) minus
sum_g n_gl n_gl' / m_g over the eliminated levels g. The level pairs (g, l) and their weights
come from GROUP BYs over the cells in SQL, once; the second term is then N'N (N_gl = n_gl /
sqrt(m_g)), one sparse product in scipy, with a kept FE of few levels (years) as a dense block;
the preconditioner's diagonal comes from the same pairs. Each iteration is then S P in scipy
(microseconds to milliseconds) instead of a pass over the cells. The stopping rule needs max_i |r_ij| over the rows, which
the level vectors bound: |(M_e D_K p)_i| <= 2 sum_q max_l |p_l| over the kept FE q
(:func:`row_change_bound`), a conservative test that costs a few more iterations (AKM 200k
rows: 292 against 278). The product costs sum_g k_g^2 steps (k_g: the kept levels met by
eliminated group g); beyond 64 x the cells or 4e8 pairs the SQL operator is used instead.

**Stopping rule** (the rule of the alternating projections in :mod:`.demean`): in one
iteration the demeaned value of row i of column j changes by gamma_j r_ij (r = M_e D_K p_j),
so column j has converged when

    |gamma_j| max_i |r_ij|  <=  tol * (1 + scale_j),   scale_j = max |v_j - mean_j|,

an absolute-plus-relative test; a converged column is frozen and leaves the query.  A
column also stops, without a step, when its search direction is numerically a null
direction of S (the CG residual has reached the rounding floor; see :func:`solve_schur`).
If a column has not converged after ``maxiter`` iterations :class:`DemeanNotConverged` is
raised.

**Why this method** (measured on ``tests/panels.akm_panel``: an AKM-like worker-firm-year
panel, 20,000 rows, 2,000 workers, 200 firms in regions of 10 between which workers rarely
move, 10 years; y and two regressors, tol 1e-13; DuckDB on 2 shared cores, +-30%):

=======================================================  ===============  ==================
method (worker + firm + year)                            iterations       seconds
=======================================================  ===============  ==================
plain alternating projections (``"alternating"``)        ~57,000 sweeps   ~1,240 (22 ms a
                                                                          sweep; raises at
                                                                          the default 10,000)
alternating projections on the FE coefficients,          5,210 sweeps     167
Irons-Tuck acceleration (as fixest), in SQL
CG on D'WD, Jacobi preconditioner, in SQL                264              3.9
CG on D'WD, symmetric Gauss-Seidel preconditioner        146 (numpy)      not built: ~5
                                                                          passes an iteration
CG on the Schur complement of the largest FE,            94               1.0-1.5
diagonal preconditioner (this module)
=======================================================  ===============  ==================

At 1M rows (100,000 workers, 10,000 firms) the Jacobi CG needed 1,214 iterations (235 s),
this method 402 (67 s; coefficients within 2e-14 of pyfixest's ``within`` LSMR), one
statement an iteration of about the same cost; with the explicit S (formed in one pass) 394
iterations in 3.8 s, and the well-connected unit+year+sector panel 2.0 s against 4.0 s.  See also
the methods note (``docs/methods.md`` § 33) and the ``multi_fe`` benchmark section
(``tests/benchmarks/multi_fe.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from .demean import DemeanNotConverged
from .sqlutil import TempScope

DIAGONAL_FLOOR = 1e-6  # relative to the level's weight; see the module docstring
NULL_RAYLEIGH = 1e3 * np.finfo(float).eps  # a search direction this flat is rounding noise (solve_schur)


@dataclass
class FeIndex:
    """The fixed-effect levels as one global index: level l of FE q is slot ``offsets[q] + l``.

    FE codes are the internal integers 1..L of :mod:`.sample`, without gaps; a slot no row used
    would have weight 0 and stay 0 throughout.
    """

    cells: str  # temp table: __g0..__g{Q-1} (global slots), __sw (the cell's weight total), __n (its rows)
    offsets: list[int]
    size: int
    level_weight: np.ndarray  # (size,) the weight total of every level
    eliminated: int  # the FE with the most levels, solved for exactly within each iteration

    @property
    def slots(self) -> list[str]:
        return [f"__g{q}" for q in range(len(self.offsets))]

    @property
    def kept(self) -> list[int]:
        return [q for q in range(len(self.offsets)) if q != self.eliminated]

    def slot_end(self, q: int) -> int:
        """One past the last global slot of FE q."""
        return self.offsets[q + 1] if q + 1 < len(self.offsets) else self.size

    def used_slots(self, q: int) -> np.ndarray:
        """Global slot numbers of the levels of FE q present in the sample."""
        return self.offsets[q] + np.flatnonzero(self.level_weight[self.offsets[q]:self.slot_end(q)] > 0)

    def slot_columns(self, fe: Sequence[str]) -> str:
        """SQL select list mapping the FE code columns ``fe`` to their global slots."""
        # FE codes and offsets are internal integers, not data: safe as literals
        return ", ".join(f"CAST({f} + {off} AS BIGINT) AS __g{q}" for q, (f, off) in enumerate(zip(fe, self.offsets)))


def fe_index(con: duckdb.DuckDBPyConnection, scope: TempScope, table: str, fe: Sequence[str],
             weights: str | None) -> FeIndex:
    """Collapse the rows of ``table`` to their distinct FE combinations and weigh the levels."""
    fe = list(fe)
    top = con.execute(f"SELECT {', '.join(f'max({f})' for f in fe)} FROM {table}").fetchone()
    offsets, size = [], 0
    for mx in top:
        offsets.append(size)
        size += int(mx) + 1
    index = FeIndex("", offsets, size, np.zeros(size), 0)
    sw = f"sum({weights})" if weights else "CAST(count(*) AS DOUBLE)"
    index.cells = scope.table("cells")
    con.execute(f"CREATE TEMP TABLE {index.cells} AS SELECT {index.slot_columns(fe)}, {sw} AS __sw, "
                f"count(*) AS __n FROM {table} GROUP BY ALL")
    parts = [f"SELECT {g} AS __key, sum(__sw) AS __w FROM {index.cells} GROUP BY {g}" for g in index.slots]
    got = con.execute(" UNION ALL ".join(parts)).fetchnumpy()
    index.level_weight[np.asarray(got["__key"], dtype=np.int64)] = np.asarray(got["__w"], dtype=float)
    levels = [int(np.count_nonzero(index.level_weight[off:off + int(mx) + 1])) for off, mx in zip(offsets, top)]
    index.eliminated = int(np.argmax(levels))
    return index


def _within_eliminated(index: FeIndex, rows: str, values: Sequence[str], carry: Sequence[str] = ()) -> str:
    """CTEs ``s`` (the values per row) and ``r`` (r_j = s_j - weighted mean of s_j within the
    level of the eliminated FE), over the relation ``rows`` with the slots and ``__sw``."""
    ge = f"__g{index.eliminated}"
    keep = "".join(f"{c}, " for c in carry)
    vals = ", ".join(f"{v} AS __s{j}" for j, v in enumerate(values))
    means = ", ".join(f"sum(__sw * __s{j}) / sum(__sw) AS __t{j}" for j in range(len(values)))
    resid = ", ".join(f"s.__s{j} - t.__t{j} AS __r{j}" for j in range(len(values)))
    return (f"s AS (SELECT {keep}{', '.join(index.slots)}, __sw, {vals} FROM {rows}), "
            f"t AS (SELECT {ge}, {means} FROM s GROUP BY {ge}), "
            f"r AS (SELECT {''.join(f's.{c}, ' for c in carry)}{', '.join('s.' + g for g in index.slots)}, "
            f"s.__sw, {resid} FROM s JOIN t ON s.{ge} = t.{ge})")


def _kept_sums(con: duckdb.DuckDBPyConnection, index: FeIndex, ctes: str, n_values: int,
               params: Sequence[float] = (), with_max: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """sum(__sw * __r_j) of the CTE ``r`` by the level of every kept FE, as a (size, n) array,
    and (``with_max``) max |__r_j| over the rows; one statement, a ``UNION ALL`` of GROUP BYs
    (in DuckDB 2.0 ~20% faster than the equivalent ``GROUPING SETS`` at 1M rows)."""
    nulls_m = "".join(", NULL::DOUBLE" for _ in range(n_values)) if with_max else ""
    parts = [
        f"SELECT __g{q} AS __key, {', '.join(f'sum(__sw * __r{j})' for j in range(n_values))}{nulls_m} "
        f"FROM r GROUP BY __g{q}"
        for q in index.kept
    ]
    if with_max:
        nulls_s = "".join("NULL::DOUBLE, " for _ in range(n_values))
        parts.append(f"SELECT -1, {nulls_s}{', '.join(f'max(abs(__r{j}))' for j in range(n_values))} FROM r")
    got = con.execute(f"WITH {ctes} {' UNION ALL '.join(parts)}", list(params)).fetchnumpy()
    names = list(got)
    keys = np.asarray(got[names[0]], dtype=np.int64)
    level = keys >= 0
    sums = np.zeros((index.size, n_values))
    for j in range(n_values):
        sums[keys[level], j] = np.asarray(got[names[1 + j]], dtype=float)[level]
    maxima = np.array([float(np.asarray(got[names[1 + n_values + j]], dtype=float)[~level][0])
                       for j in range(n_values)]) if with_max else np.zeros(0)
    return sums, maxima


def _sample_rows(index: FeIndex, table: str, fe: Sequence[str], weights: str | None) -> str:
    """The sample's rows with their slots and their weight ``__sw``."""
    return f"(SELECT *, {index.slot_columns(fe)}, {weights or 'CAST(1.0 AS DOUBLE)'} AS __sw FROM {table})"


def schur_rhs(con: duckdb.DuckDBPyConnection, index: FeIndex, table: str, fe: Sequence[str],
              columns: Sequence[str], mean: Sequence[float], weights: str | None) -> np.ndarray:
    """D_K'W M_e v for the grand-mean-centred columns v (means bound as parameters): (size, p)."""
    ctes = _within_eliminated(index, _sample_rows(index, table, fe, weights), [f"{c} - ?" for c in columns])
    return _kept_sums(con, index, ctes, len(columns), list(mean))[0]


def schur_diagonal(con: duckdb.DuckDBPyConnection, index: FeIndex) -> np.ndarray:
    """diag(S) of every kept slot, 0 for the levels that the eliminated FE explains.

    S_ll = sum_g n_gl (m_g - n_gl) / m_g over the levels g of the eliminated FE (n_gl: the
    weight of the rows in g and l, m_g: of g), floored at DIAGONAL_FLOOR x the weight of l.
    A level all of whose e-groups lie entirely inside it (a firm with only stayers, a FE
    nested in e) has S_ll = 0, so S e_l = 0: a null direction that needs no coefficient. It
    is found with row counts (exact integers, unlike weight sums), returned as 0 and kept
    out of the iteration - with the floor alone, rounding residues on such levels were
    divided by 1e-6 and the iteration diverged (measured: 40,000-row AKM panel, 2 years).
    """
    ge = f"__g{index.eliminated}"
    parts = [
        f"SELECT p.__l AS __key, sum(p.__w * (m.__m - p.__w) / m.__m) AS __d, sum(m.__c - p.__c) AS __out "
        f"FROM (SELECT {ge}, __g{q} AS __l, sum(__sw) AS __w, sum(__n) AS __c FROM {index.cells} GROUP BY ALL) p "
        f"JOIN m ON p.{ge} = m.{ge} GROUP BY p.__l"
        for q in index.kept
    ]
    got = con.execute(
        f"WITH m AS (SELECT {ge}, sum(__sw) AS __m, sum(__n) AS __c FROM {index.cells} GROUP BY {ge}) "
        f"{' UNION ALL '.join(parts)}"
    ).fetchnumpy()
    return _floored_diagonal(index, np.asarray(got["__key"], dtype=np.int64), np.asarray(got["__d"], dtype=float),
                             np.asarray(got["__out"], dtype=np.int64))


def _floored_diagonal(index: FeIndex, keys: np.ndarray, d: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """diag(S) over the slots: ``d`` at ``keys``, floored; 0 where no row of the level's e-groups
    lies outside the level (``outside`` == 0) and on every other slot."""
    diag = np.zeros(index.size)
    diag[keys] = np.maximum(d, DIAGONAL_FLOOR * index.level_weight[keys])
    diag[keys[outside == 0]] = 0.0
    return diag


def remove_constant_directions(blocks: Sequence[np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """Centre every kept FE's block of ``vectors`` over its used levels (in place).

    S 1_q = 0 for the all-ones vector 1_q of every kept FE q (the eliminated FE absorbs any
    constant), so the right-hand side and every S p are orthogonal to each 1_q in exact
    arithmetic.  Rounding is not: the level sums of a FE with few heavy levels (years of a
    1M-row panel) carry errors along 1_q that CG cannot remove, and without this
    projection the iteration drifted along 1_q and never met the stopping rule (measured:
    y and x2 of the 1M-row AKM panel, > 3,000 iterations, error 0.2-3.6; with it ~405
    iterations, error 1e-10).

    ``blocks``: the rows of ``vectors`` that hold each kept FE's used levels.
    """
    for used in blocks:
        if len(used):
            vectors[used] -= vectors[used].mean(axis=0)
    return vectors


class _Vectors:
    """A registered view of FE-level vectors (``__g`` = slot, ``__p{j}`` = column j), replaced in place."""

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: TempScope, size: int):
        self.con = con
        self.slot = np.arange(size, dtype=np.int64)
        self.name = scope.register(self._frame(np.zeros((size, 0))), "fevec")

    def _frame(self, vectors: np.ndarray) -> pd.DataFrame:
        data = {"__g": self.slot}
        data.update({f"__p{j}": np.ascontiguousarray(vectors[:, j]) for j in range(vectors.shape[1])})
        return pd.DataFrame(data)

    def set(self, vectors: np.ndarray) -> None:
        self.con.register(self.name, self._frame(vectors))

    def joins(self, kept: Sequence[int], alias: str) -> str:
        return " ".join(f"JOIN {self.name} p{q} ON {alias}.__g{q} = p{q}.__g" for q in kept)

    @staticmethod
    def row_sum(kept: Sequence[int], j: int) -> str:
        """(D_K v_j)_i: the vector's entries of the row's kept levels, summed."""
        return " + ".join(f"p{q}.__p{j}" for q in kept)


def apply_schur(con: duckdb.DuckDBPyConnection, index: FeIndex, vectors: _Vectors,
                directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S P for the columns of P, and max_i |(M_e D_K P_j)_i| per column: one statement over the cells."""
    vectors.set(directions)
    kept = index.kept
    rows = f"(SELECT c.*, {', '.join(f'{vectors.row_sum(kept, j)} AS __v{j}' for j in range(directions.shape[1]))} " \
           f"FROM {index.cells} c {vectors.joins(kept, 'c')})"
    ctes = _within_eliminated(index, rows, [f"__v{j}" for j in range(directions.shape[1])])
    return _kept_sums(con, index, ctes, directions.shape[1], with_max=True)


# The explicit S costs one sparse product whose work is sum_g k_g^2 (k_g = kept levels met by
# eliminated group g) and then nothing per iteration; the SQL operator costs one pass over the
# cells per iteration.  Measured (1M rows, 2 shared cores): AKM-like worker+firm+year,
# sum k_g^2 = 13 x cells, 380 iterations: 68 s -> ~3 s; unit+year+sector, 32 x cells, 9
# iterations: 4.0 s -> 2.0 s.  Beyond these budgets the product (and the memory of S) would
# outgrow what it saves.
EXPLICIT_PAIRS_PER_CELL = 64
EXPLICIT_PAIRS_MAX = 400_000_000


def schur_matrix(con: duckdb.DuckDBPyConnection, index: FeIndex):
    """(S, its floored diagonal as :func:`schur_diagonal` gives it), S = D_K'W D_K -
    (E'W D_K)' (E'W E)^-1 (E'W D_K) a sparse matrix over the global slots; or None when the
    product would exceed the budgets above.

    E is the eliminated FE's dummy matrix.  The first term has the level weights on its
    diagonal and, between two kept FE, the weight of the rows that share both levels (GROUP BYs
    over the cells).  The second is N'N with N_gl = n_gl / sqrt(m_g): n_gl the weight of the
    rows in eliminated level g and kept level l (one GROUP BY over the cells, an entry per
    pair met in the data), m_g the weight of g; scipy's sparse product forms it in one
    single-threaded pass of sum_g k_g^2 multiply-adds, where a self-join in SQL would first
    write out every pair (10M rows, unit+year+sector: 320M pairs, 12 s against about 5 s).
    The diagonal comes from the same entries (sum_g n_gl (m_g - n_gl) / m_g, with the
    nested levels found by exact row counts), which saves :func:`schur_diagonal`'s pass.
    """
    from scipy import sparse

    ge, kept = f"__g{index.eliminated}", index.kept
    start = index.offsets[index.eliminated]
    got = con.execute(
        " UNION ALL ".join(f"SELECT {ge} AS __e, __g{q} AS __l, sum(__sw) AS __w, sum(__n) AS __c "
                           f"FROM {index.cells} GROUP BY ALL" for q in kept)
    ).fetchnumpy()
    e = np.asarray(got["__e"], dtype=np.int64) - start
    level = np.asarray(got["__l"], dtype=np.int64)
    w = np.asarray(got["__w"], dtype=float)
    rows_in = np.asarray(got["__c"], dtype=np.int64)
    del got
    met = np.bincount(e)  # k_g: the kept levels group g meets
    pairs = int(np.dot(met, met))
    n_cells = int(con.execute(f"SELECT count(*) FROM {index.cells}").fetchall()[0][0])
    if pairs > min(EXPLICIT_PAIRS_MAX, EXPLICIT_PAIRS_PER_CELL * max(n_cells, 1)):
        return None
    # m_g and the rows of g from the first kept FE alone: its levels split each group's rows once
    first = (level >= index.offsets[kept[0]]) & (level < index.slot_end(kept[0]))
    m = np.bincount(e[first], weights=w[first], minlength=len(met))
    # row counts as float64 sums: integers below 2^53, so exact
    group_rows = np.bincount(e[first], weights=rows_in[first], minlength=len(met))
    m_e = m[e]
    d = np.bincount(level, weights=w * (m_e - w) / m_e, minlength=index.size)
    outside = np.bincount(level, weights=group_rows[e] - rows_in, minlength=index.size)
    keys = np.flatnonzero(np.bincount(level, minlength=index.size))
    diag = _floored_diagonal(index, keys, d[keys], outside[keys])
    n = sparse.csr_matrix((w / np.sqrt(m_e), (e, level)), shape=(len(met), index.size))
    del e, w, m_e, rows_in, level
    blocks = [index.used_slots(q) for q in kept]
    pooled = _gram(n, blocks, index.size)
    cross = [f"SELECT __g{q} AS __i, __g{r} AS __j, sum(__sw) AS __s FROM {index.cells} GROUP BY ALL"
             for q in kept for r in kept if q != r]
    rows, cols, vals = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    if cross:
        got = con.execute(" UNION ALL ".join(cross)).fetchnumpy()
        rows, cols = np.asarray(got["__i"], dtype=np.int64), np.asarray(got["__j"], dtype=np.int64)
        vals = np.asarray(got["__s"], dtype=float)
    slots = np.concatenate(blocks)
    rows, cols = np.concatenate([rows, slots]), np.concatenate([cols, slots])
    vals = np.concatenate([vals, index.level_weight[slots]])
    cooccur = sparse.csr_matrix((vals, (rows, cols)), shape=(index.size, index.size))
    return (cooccur - pooled).tocsr(), diag


DENSE_LEVELS = 64  # a kept FE with at most this many levels (years) is multiplied as a dense block


def _gram(n, blocks: Sequence[np.ndarray], size: int):
    """N'N (size x size, sparse) with the columns of the kept FE with few levels as dense blocks.

    A sparse-by-sparse product costs sum_g k_g^2 steps of scipy's general loop (about 15 ns
    each); a FE with a handful of levels (years) met by every group makes most of those pairs,
    and its columns multiply far faster as a dense block: BLAS for its own block, a
    sparse-by-dense product for its cross block with the others."""
    from scipy import sparse

    small = np.concatenate([np.zeros(0, dtype=np.int64)] + [b for b in blocks if 0 < len(b) <= DENSE_LEVELS])
    large = np.concatenate([np.zeros(0, dtype=np.int64)] + [b for b in blocks if len(b) > DENSE_LEVELS])
    parts = []  # (rows, cols, block)
    if len(large):
        n_large = n[:, large]
        parts.append((large, large, (n_large.T @ n_large).tocoo()))
    if len(small):
        n_small = n[:, small].toarray()
        parts.append((small, small, sparse.coo_matrix(n_small.T @ n_small)))
        if len(large):
            cross = sparse.coo_matrix(np.asarray(n_large.T @ n_small))
            parts.append((large, small, cross))
            parts.append((small, large, cross.T))
    rows = np.concatenate([r[b.row] for r, _, b in parts])
    cols = np.concatenate([c[b.col] for _, c, b in parts])
    vals = np.concatenate([b.data for _, _, b in parts])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(size, size))


def row_change_bound(blocks: Sequence[np.ndarray], directions: np.ndarray) -> np.ndarray:
    """An upper bound of max_i |(M_e D_K P_j)_i| from the level vectors alone: a row's D_K p is a
    sum of one entry per kept FE, and its within-group mean is bounded by the same sum."""
    bound = np.zeros(directions.shape[1])
    for used in blocks:
        if len(used):
            bound += np.abs(directions[used]).max(axis=0)
    return 2.0 * bound


@dataclass
class CgSolution:
    coef: np.ndarray  # (size, p): a_K, zero on the eliminated FE's slots
    iterations: int
    max_change: float  # the last scaled change of the slowest column (a bound with the explicit S)
    operator: str = "sql"  # "explicit": S formed once as a sparse matrix; "sql": one pass an iteration


def solve_schur(con: duckdb.DuckDBPyConnection, scope: TempScope, index: FeIndex, rhs: np.ndarray,
                scale: Sequence[float], tol: float, maxiter: int) -> CgSolution:
    """Preconditioned CG for S a_K = rhs, every column in the same statement.

    Column j stops when its change per iteration |gamma_j| max_i |r_ij| is at most
    tol * (1 + scale_j) (see the module docstring), or - before taking the step - when the
    search direction p is numerically a null direction of S: its Rayleigh quotient
    p'Sp / p'Mp (M the preconditioner) is at most NULL_RAYLEIGH x the largest seen for the
    column.  Then M_e D_K p is rounding noise: the CG residual has reached the rounding
    floor, and a step of rz / p'Sp would only add noise (measured: a 700-row 2-FE panel
    whose step grew to 5e18 and wiped out a column when iterating on).
    """
    n_col = rhs.shape[1]
    explicit = schur_matrix(con, index)
    if explicit is not None:
        explicit, diag = explicit
    else:
        diag = schur_diagonal(con, index)
    used = [index.used_slots(q) for q in index.kept]
    if explicit is not None:
        # iterate on the kept FE's used levels only (the eliminated FE's slots are most of them)
        sel = np.concatenate(used)
        explicit = explicit[sel][:, sel]
        ends = np.cumsum([len(u) for u in used])
        blocks = [np.arange(end - len(u), end) for u, end in zip(used, ends)]
    else:
        sel, blocks = np.arange(index.size), used
    size = len(sel)
    diag, rhs = diag[sel], rhs[sel]
    # zero on the eliminated FE's slots, unused slots and levels explained by e: never updated
    inv_diag = np.divide(1.0, diag, out=np.zeros(size), where=diag > 0)[:, None]
    scale = np.asarray(scale, dtype=float)
    bound = tol * (1.0 + scale)
    coef = np.zeros((size, n_col))
    resid = remove_constant_directions(blocks, rhs.copy())
    p = inv_diag * resid
    rz = np.einsum("ij,ij->j", resid, p)
    active = rz > 0  # a column already orthogonal to every fixed effect needs no step
    change = np.zeros(n_col)
    rayleigh_max = np.zeros(n_col)
    vectors = _Vectors(con, scope, size) if explicit is None else None
    it = 0
    while active.any():
        if it == maxiter:
            worst = float(np.max((change / (1.0 + scale))[active]))
            raise DemeanNotConverged(
                f"conjugate-gradient demeaning did not converge in {maxiter} iterations (last change "
                f"{worst:.3g} x (1 + scale) > tol {tol:.3g} x (1 + scale)); raise fixef_maxiter or fixef_tol"
            )
        it += 1
        cols = np.flatnonzero(active)
        pc = p[:, cols]
        if explicit is not None:
            ap, max_row = explicit @ pc, row_change_bound(blocks, pc)
        else:
            ap, max_row = apply_schur(con, index, vectors, pc)
        remove_constant_directions(blocks, ap)
        pap = np.einsum("ij,ij->j", pc, ap)
        if not (np.all(np.isfinite(pap)) and np.all(np.isfinite(max_row))):
            raise DemeanNotConverged("conjugate-gradient demeaning produced NaN (a non-finite value in the data)")
        rayleigh = pap / np.einsum("ij,ij->j", pc * diag[:, None], pc)
        rayleigh_max[cols] = np.maximum(rayleigh_max[cols], rayleigh)
        step = rayleigh > NULL_RAYLEIGH * rayleigh_max[cols]
        gamma = np.where(step, rz[cols] / np.where(step, pap, 1.0), 0.0)
        coef[:, cols] += gamma * pc
        resid[:, cols] -= gamma * ap
        change[cols[step]] = (np.abs(gamma) * max_row)[step]
        z = inv_diag * resid[:, cols]
        rz_new = np.einsum("ij,ij->j", resid[:, cols], z)
        beta = np.divide(rz_new, rz[cols], out=np.zeros(len(cols)), where=rz[cols] > 0)
        p[:, cols] = z + beta * pc
        rz[cols] = rz_new
        active[cols[~step | (change[cols] <= bound[cols]) | (rz_new <= 0)]] = False
    full = np.zeros((index.size, n_col))
    full[sel] = coef
    return CgSolution(full, it, float(np.max(change / (1.0 + scale), initial=0.0)),
                      "sql" if explicit is None else "explicit")


def subtract_fitted(con: duckdb.DuckDBPyConnection, scope: TempScope, index: FeIndex, table: str,
                    fe: Sequence[str], keep: Sequence[str], columns: Sequence[str], mean: Sequence[float],
                    weights: str | None, coef: np.ndarray) -> str:
    """CREATE TEMP TABLE of ``keep`` + the demeaned columns M_e ((v - mean) - D_K a_K), one statement."""
    vectors = _Vectors(con, scope, index.size)
    vectors.set(coef)
    kept = index.kept
    rows = f"(SELECT z.*, {', '.join(f'{vectors.row_sum(kept, j)} AS __a{j}' for j in range(len(columns)))} " \
           f"FROM {_sample_rows(index, table, fe, weights)} z {vectors.joins(kept, 'z')})"
    ctes = _within_eliminated(index, rows, [f"({c} - ?) - __a{j}" for j, c in enumerate(columns)], carry=keep)
    out = scope.table("dm")
    sel = ", ".join(f"__r{j} AS {c}" for j, c in enumerate(columns))
    con.execute(f"CREATE TEMP TABLE {out} AS WITH {ctes} SELECT {''.join(f'{c}, ' for c in keep)}{sel} FROM r",
                list(mean))
    return out
