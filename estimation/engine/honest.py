"""Rambachan-Roth (2023) "HonestDiD" sensitivity analysis of an event study.

Pure small algebra on an event study's output: no data, no SQL.  Inputs are the
coefficients ``betahat`` = (beta_pre', beta_post')' - the ``num_pre`` leads, oldest
first, then the ``num_post`` lags - with the reference period (the one just before the
first post period) excluded, and their variance ``sigma``.  Notation of the paper:
periods t = -T_pre..-1 (pre), 0 (reference, delta_0 = 0), 1..T_post (post), and

    beta = tau + delta,   tau_pre = 0,   theta = l' tau_post       (l = ``l_vec``).

delta is the violation of parallel trends; a restriction says delta in Delta, and the
robust confidence set covers theta uniformly over delta in Delta.

Restrictions (both written as unions of polyhedra {delta : A delta <= d}):

* Relative magnitudes Delta^RM(Mbar): |delta_{t+1} - delta_t| <= Mbar max_{s<0}
  |delta_{s+1} - delta_s| for every t >= 0.  The max over the T_pre pre-period first
  differences (s = -T_pre..-1; s = -1 is delta_0 - delta_{-1}) makes Delta^RM a union
  of 2 T_pre polyhedra Delta_{s,+-}: "the largest pre difference is the s-th, with sign
  +-": (+) reads |D_r delta| <= D_s delta for every pre difference r and
  |D_r delta| <= Mbar D_s delta for every post difference r (D_r the r-th first
  difference), stacked as [D - U; -D - U] delta <= 0 (U the bounds' rows; the all-zero
  row r = s dropped).  The confidence set is the union of the sets of the polyhedra
  (Rambachan & Roth 2023, Lemma 2.2).
* Smoothness Delta^SD(M): |delta_{t+1} - 2 delta_t + delta_{t-1}| <= M for every
  t = -T_pre+1..T_post-1: A = [S; -S], d = M 1 (S the second differences).

Robust confidence sets

* Conditional (Andrews, Roth & Pakes 2023, "ARP"), test inversion over a grid of
  theta.  With Y = A betahat - d, Sigma_Y = A Sigma A' and tau_post = theta l/(l'l) +
  N xi (N an orthonormal basis of l's orthogonal complement, xi the T_post - 1
  nuisance parameters), H0(theta) is  E[Y - a theta - X xi] <= 0 for some xi, with
  a = A_post l/(l'l), X = A_post N.  The statistic is the LP

      eta = min_{eta, xi} eta   s.t.  Y - a theta - X xi <= eta sigma_Y    (sigma_Y = sqrt diag Sigma_Y).

  Its multipliers gamma >= 0 (gamma'sigma_Y = 1, gamma'X = 0) are a vertex of the dual
  polytope {lambda >= 0 : [sigma_Y, X]'lambda = e_1}, which does not depend on theta:
  when it has at most VERTEX_LIMIT candidate bases its vertices are enumerated once and
  eta = max_v lambda_v'(Y - a theta) (LP duality), else the LP is warm-started
  (``WarmBases``): a basis of that polytope stays feasible as theta moves, so the optimal
  bases met so far are kept, a new theta tries them and then primal simplex pivots (on
  the dual LP) from the last one, and the answer is used only when the basis's vertex
  meets every other row with a margin - its multipliers are then the unique optimal ones,
  the ones HiGHS returns - and its value is not 0 up to rounding; otherwise (a new
  polyhedron, a degenerate optimum) HiGHS' dual simplex solves the LP and its basis is
  kept.  If exactly T_post multipliers exceed 1e-6 and the binding rows of X have
  full rank, the truncation bounds of gamma'Y given the binding set are closed-form
  (primal, ARP section 5):  W_B = [sigma_B, X_B], v_B = W_B^{-T} e_1,
  s_B^2 = v_B' Sigma_Y v_B, G = W_Bc W_B^{-1} S_B - S_Bc, rho = G Sigma_Y v_B / s_B^2,
  vlo = max_{rho>0} (-G Y)/rho + v_B'Y, vup = min_{rho<0} (same).  Otherwise (dual,
  ARP Appendix D) vlo, vup are the ends of {c : max_{lambda} lambda'(S + b c) = c},
  S = (I - b gamma')Y, b = Sigma_Y gamma/(gamma' Sigma_Y gamma): with the vertices in
  hand, vlo = max_{q_v<1} p_v/(1 - q_v), vup = min_{q_v>1} p_v/(1 - q_v) (p = Lambda S,
  q = Lambda b); with the LP, Newton steps on that convex piecewise-linear function
  (exact at its kinks, bisection as a fallback; HonestDiD bisects to 1e-6), its values
  max_lambda lambda'r (r = S + b c) from the same warm-started bases (the LP min z_0 s.t.
  [sigma_Y, X] z >= r; at a tie V(c) = c only the value is needed, which any optimal
  basis gives), else HiGHS on the dual.  Reject iff
  eta/s_B > max(0, q), q the 1 - alpha quantile of N(0,1) truncated to
  [vlo/s_B, vup/s_B]; accept when eta/s_B falls outside that interval (as ARP and
  HonestDiD do); when s_B = 0 (a +- pair of rows both binding) reject iff eta > 0.
  With T_post > 1 only the rows of A that involve a post period are used
  ("post-period moments only", HonestDiD's default); with T_post = 1 there is no
  nuisance parameter and all rows are used (HonestDiD's no-nuisance test, with the same
  max(0, q) rule).  The grid: ``theta_points`` (1000) equally spaced values; by default
  the identified set (RM) or the linear-extrapolation estimate +- the identified set's
  half-width at beta = 0 (SD), +- 20 sd(theta), doubled while the accepted set touches
  an end or is empty.  Every grid point is tested when the vertices are enumerated (as
  HonestDiD does), else ~50 coarse points plus bisection of each switch.  The CI is
  [first, last] accepted point of the union over polyhedra (exact to one grid step).
* FLCI (Armstrong & Kolesar 2018, HonestDiD's default for Delta^SD): the affine
  estimator theta^ = l'betahat_post + v'betahat_pre with the shortest fixed-length CI
  theta^ +- sd(v) cv_alpha(bias(v)/sd(v)), cv_alpha(t) the 1 - alpha quantile of
  |N(t, 1)|.  The worst-case bias over Delta^SD(M) is finite iff v is unbiased for
  linear trends (sum_t t c_t = 0, c = (v, l) the weights on delta), and then

      bias(v) = M ( sum_{u=1}^{T_post-1} |sum_{t>u} l_t (t-u)| + sum_{u=-T_pre+1}^{0} |g_u| ),
      g_u = sum_{t<u} v_t (u - t),   g_0 = sum_t t l_t fixed,

  (write delta by its slope at 0 and its second differences; each second difference
  enters the bias with weight g_u).  v <-> (g_{-T_pre+1..-1}, g_0) is unit triangular,
  so the problem is min_g sd(g) cv(M(K + ||g||_1)/sd(g)): convex (perspective of the
  convex cv), and its minimiser lies on the lasso path of min sd^2(g) + 2 mu ||g||_1,
  which is computed exactly (homotopy); on each linear piece of the path the 1-d
  optimum is the root of the derivative (brentq).  M = 0 gives the minimum-variance
  linear-extrapolation estimator and z_{1-alpha/2} sd(v).

Checked against moderndid 0.2.0 (the Python port of the R package HonestDiD); see
tests/test_honest.py and the methods note for the tolerances and the two places where
moderndid departs from HonestDiD (it drops the earliest pre-period difference from the
Delta^RM max, and its one-post-period conditional test double counts d).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special, stats

RESTRICTIONS = ("relative_magnitude", "smoothness")
CI_METHODS = ("FLCI", "Conditional")
DEFAULT_CI = {"relative_magnitude": ("Conditional",), "smoothness": ("FLCI", "Conditional")}
PRIMARY_CI = {"relative_magnitude": "Conditional", "smoothness": "FLCI"}

# Multipliers above this count as binding (HonestDiD's tol_lambda).
LAMBDA_TOL = 1e-6
# |max_lambda lambda'(S + b c) - c| below this: c keeps the dual vertex optimal (HonestDiD's tol_equality).
DUAL_EQUALITY_TOL = 1e-6
COARSE_POINTS = 50
# Enumerate the dual polytope's vertices when it has at most this many candidate bases.
VERTEX_LIMIT = 5000
MAX_WIDENINGS = 4


# --------------------------------------------------------------------------- inputs


def _validated(betahat, sigma, num_pre: int, num_post: int, alpha: float):
    b = np.asarray(betahat, dtype=float)
    if b.ndim != 1:
        raise ValueError(f"betahat must be a 1-d vector of event-study coefficients; got shape {b.shape}.")
    if int(num_pre) != num_pre or int(num_post) != num_post or num_pre < 1 or num_post < 1:
        raise ValueError(f"num_pre and num_post must be positive integers; got {num_pre} and {num_post}.")
    if b.size != num_pre + num_post:
        raise ValueError(f"betahat has {b.size} coefficients but num_pre + num_post = {num_pre + num_post}; "
                         "pass the leads then the lags, without the reference period.")
    if not np.all(np.isfinite(b)):
        raise ValueError("betahat contains a missing or infinite value; every coefficient must be finite.")
    s = np.asarray(sigma, dtype=float)
    if s.shape != (b.size, b.size):
        raise ValueError(f"sigma must be {b.size} x {b.size} to match betahat; got shape {s.shape}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("sigma contains a missing or infinite value.")
    scale = max(float(np.max(np.abs(s))), np.finfo(float).tiny)
    if np.max(np.abs(s - s.T)) > 1e-8 * scale:
        raise ValueError("sigma must be symmetric (it is the variance matrix of betahat).")
    s = (s + s.T) / 2
    if np.linalg.eigvalsh(s)[0] < -1e-10 * scale:
        raise ValueError("sigma must be positive semi-definite; it has a negative eigenvalue.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha}.")
    return b, s


def target_vector(l_vec, num_post: int) -> np.ndarray:
    """The weights l of theta = l' tau_post: None -> the first post period e_1,
    "average" -> (1/T_post, ..., 1/T_post), else the given vector."""
    if l_vec is None or (isinstance(l_vec, str) and l_vec == "first"):
        out = np.zeros(num_post)
        out[0] = 1.0
        return out
    if isinstance(l_vec, str):
        if l_vec != "average":
            raise ValueError(f"l_vec must be None, 'first', 'average' or a vector of length {num_post}; got {l_vec!r}.")
        return np.full(num_post, 1.0 / num_post)
    out = np.asarray(l_vec, dtype=float).ravel()
    if out.size != num_post or not np.all(np.isfinite(out)) or not np.any(out):
        raise ValueError(f"l_vec must be a finite, non-zero vector with one weight per post period ({num_post}).")
    return out


# --------------------------------------------------------------------------- restriction sets


@dataclass(frozen=True)
class Polyhedron:
    """{delta : A delta <= d} over delta = (delta_pre, delta_post) (reference period dropped)."""

    A: np.ndarray
    d: np.ndarray
    label: str


def _differences(order: int, num_pre: int, num_post: int) -> np.ndarray:
    """Rows = the order-1 or order-2 differences over the T_pre + 1 + T_post periods
    (reference period included, column T_pre)."""
    width = num_pre + num_post + 1
    stencil = np.array([-1.0, 1.0]) if order == 1 else np.array([1.0, -2.0, 1.0])
    rows = width - order
    D = np.zeros((rows, width))
    for r in range(rows):
        D[r, r:r + order + 1] = stencil
    return D


def _drop_reference(A: np.ndarray, num_pre: int) -> np.ndarray:
    return np.delete(A, num_pre, axis=1)


def relative_magnitude_polyhedra(num_pre: int, num_post: int, mbar: float) -> list[Polyhedron]:
    """The 2 T_pre polyhedra Delta^RM_{s,+-}(Mbar), s = the pre-period first difference
    that is the largest in absolute value (0 = delta_{-T_pre+1} - delta_{-T_pre}, ...,
    T_pre - 1 = delta_0 - delta_{-1}); see the module docstring."""
    D = _differences(1, num_pre, num_post)
    out = []
    for s in range(num_pre):
        for sign, name in ((1.0, "+"), (-1.0, "-")):
            bound = sign * D[s]
            U = np.vstack([np.tile(bound, (num_pre, 1)), np.tile(mbar * bound, (num_post, 1))])
            A = np.vstack([D - U, -D - U])
            A = A[np.sum(A * A, axis=1) > 1e-10]
            out.append(Polyhedron(_drop_reference(A, num_pre), np.zeros(len(A)), f"s={s - num_pre},{name}"))
    return out


def smoothness_polyhedron(num_pre: int, num_post: int, m: float) -> Polyhedron:
    """Delta^SD(M): |second differences| <= M, A = [S; -S], d = M."""
    S = _drop_reference(_differences(2, num_pre, num_post), num_pre)
    A = np.vstack([S, -S])
    return Polyhedron(A, np.full(len(A), float(m)), "SD")


def _arp_rows(A: np.ndarray, num_pre: int, num_post: int) -> np.ndarray:
    """Rows used by the conditional test: those involving a post period when T_post > 1."""
    if num_post == 1:
        return np.arange(len(A))
    return np.flatnonzero(np.any(A[:, num_pre:] != 0, axis=1))


# --------------------------------------------------------------------------- identified set


def _lp(c, A_ub=None, b_ub=None, A_eq=None, b_eq=None, bounds=(None, None), method="highs"):
    return optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method=method)


def polyhedron_identified_set(poly: Polyhedron, betahat: np.ndarray, l: np.ndarray, num_pre: int
                              ) -> tuple[float, float] | None:
    """[l'beta_post - max l'delta_post, l'beta_post - min l'delta_post] over delta in the
    polyhedron with delta_pre = beta_pre (two LPs); None if that set is empty."""
    A_pre, A_post = poly.A[:, :num_pre], poly.A[:, num_pre:]
    rhs = poly.d - A_pre @ betahat[:num_pre]
    point = float(l @ betahat[num_pre:])
    lo = _lp(l, A_post, rhs)
    hi = _lp(-l, A_post, rhs)
    if lo.status == 2 or hi.status == 2:
        return None
    low_bias = lo.fun if lo.status == 0 else -np.inf
    high_bias = -hi.fun if hi.status == 0 else np.inf
    return point - high_bias, point - low_bias


def identified_set(polyhedra: Sequence[Polyhedron], betahat: np.ndarray, l: np.ndarray, num_pre: int
                   ) -> tuple[float, float] | None:
    """Union (its hull) of the polyhedra's identified sets; None if all are empty."""
    sets = [s for p in polyhedra if (s := polyhedron_identified_set(p, betahat, l, num_pre)) is not None]
    if not sets:
        return None
    return min(s[0] for s in sets), max(s[1] for s in sets)


# --------------------------------------------------------------------------- truncated normal


def truncated_normal_quantile(p: float, lower: float, upper: float) -> float:
    """Quantile p of N(0,1) truncated to [lower, upper], accurate in the far tails:
    Phi(x) = (1-p) Phi(lower) + p Phi(upper) solved on the log scale (the right tail by
    symmetry).  HonestDiD uses TruncatedNormal::norminvp."""
    if lower > 0:
        return -truncated_normal_quantile(1 - p, -upper, -lower)
    if p <= 0:
        return lower
    if p >= 1:
        return upper
    log_lo = float(special.log_ndtr(lower)) if np.isfinite(lower) else -np.inf
    log_hi = float(special.log_ndtr(upper)) if np.isfinite(upper) else 0.0
    q = float(special.ndtri_exp(np.logaddexp(math.log1p(-p) + log_lo, math.log(p) + log_hi)))
    return min(max(q, lower), upper)


# --------------------------------------------------------------------------- ARP conditional test


def dual_vertices(W: np.ndarray, limit: int) -> np.ndarray | None:
    """The vertices of {lambda >= 0 : W'lambda = e_1} (one per row), by enumerating the
    bases of size rank(W); None when W lacks full column rank or there are more than
    ``limit`` bases (then the LP is used instead)."""
    m, r = W.shape
    if np.linalg.matrix_rank(W) < r or math.comb(m, r) > limit:
        return None
    e1 = np.eye(r)[0]
    found = []
    for basis in itertools.combinations(range(m), r):
        W_b = W[list(basis)]
        if np.linalg.cond(W_b) > 1e12:
            continue
        lam_b = linalg.solve(W_b.T, e1)
        if np.all(lam_b >= -1e-12 * np.max(np.abs(lam_b))):
            lam = np.zeros(m)
            lam[list(basis)] = np.clip(lam_b, 0.0, None)
            found.append(lam)
    if not found:
        return np.zeros((0, m))
    return np.unique(np.round(np.array(found), 14), axis=0)


class WarmBases:
    """Recently optimal bases of the LP  min z_0 s.t. W z >= r  (dual: max lambda'r over
    {lambda >= 0 : W'lambda = e_1}) for a fixed W and right-hand sides r that vary (the
    conditional test's y - a theta, the dual truncation's S + b c).

    A basis - n = W's column count rows B with W_B invertible and lambda_B = W_B^{-T} e_1
    >= 0 - is dual feasible whatever r is, and optimal for r when its vertex
    z = W_B^{-1} r_B satisfies the other rows.  If they hold strictly, complementary
    slackness with z forces every optimal lambda to vanish off B, so lambda_B is the unique
    optimal multiplier vector - the one HiGHS returns too - and z_0 the LP value.  Within
    ``SLACK_MARGIN`` of degeneracy, or with a multiplier close to LAMBDA_TOL, which
    multipliers HiGHS returns depends on its pivoting and tolerances, so ``lookup`` passes
    and the caller solves the LP (and ``learn``s its basis)."""

    # Slack a vertex must leave on the other rows: relative to |W_i||z| + |r_i|, and absolute
    # (per unit of max_j |W_ij|) at 10x HiGHS' feasibility tolerance of 1e-7 - HiGHS may
    # return a vertex that violates a row by that much, so nearer ties are left to it.
    SLACK_MARGIN = 1e-7
    ABS_MARGIN = 1e-6
    SIZE = 32
    PIVOTS = 30

    def __init__(self, W: np.ndarray):
        self.W = W
        self.abs_W = np.abs(W)
        # (rows, other rows, W_B^{-1}, W_others, |W_others|, absolute margins, lambda), most recent first
        self.entries: list[tuple] = []

    def lookup(self, r: np.ndarray, value_only: bool = False) -> tuple[float, np.ndarray] | None:
        """(LP value, multipliers) from a cached basis that is optimal for r with a margin;
        else None.  ``value_only``: any cached basis optimal for r (up to rounding) will do,
        degenerate or not - the value is unique, its multipliers are then one optimal
        vertex among several."""
        margin = -1e-12 if value_only else self.SLACK_MARGIN
        for j, (rows, others, inv, W_o, abs_W_o, floor, lam) in enumerate(self.entries):
            z = inv @ r[rows]
            r_o = r[others]
            if np.all(W_o @ z - r_o > margin * (abs_W_o @ np.abs(z) + np.abs(r_o)) + (0.0 if value_only else floor)):
                if not value_only and abs(z[0]) <= 1e-10 * float(np.abs(lam[rows]) @ np.abs(r[rows])):
                    return None  # 0 up to cancellation: its sign (the verdict when s_B = 0) is HiGHS' rounding
                if j:
                    self.entries.insert(0, self.entries.pop(j))
                return float(z[0]), lam
        return None

    def solve(self, r: np.ndarray, value_only: bool = False) -> tuple[float, np.ndarray] | None:
        """``lookup``, else primal simplex pivots on the dual LP from the most recent basis
        (it stays feasible there: only the objective r changed), Bland's rule against
        cycling; the basis reached must then pass ``lookup``'s test.  None: solve the LP."""
        found = self.lookup(r, value_only)
        if found is not None or not self.entries:
            return found
        W = self.W
        rows = self.entries[0][0].copy()
        for _ in range(self.PIVOTS):
            try:
                inv = np.linalg.inv(W[rows])
            except np.linalg.LinAlgError:  # a numerically singular step: leave it to HiGHS
                return None
            z = inv @ r[rows]
            gain = r - W @ z  # > 0: lambda_j entering raises lambda'r
            gain[rows] = 0.0
            entering = np.flatnonzero(gain > 1e-12 * (self.abs_W @ np.abs(z) + np.abs(r)))
            if not entering.size:
                return self.lookup(r, value_only) if self._add(rows) else None
            j = int(entering[0])
            lam_b, step = inv[0], inv.T @ W[j]  # lambda_B(t) = lambda_B - t step as lambda_j = t grows
            down = step > 1e-12 * np.max(np.abs(step))
            if not down.any():
                return None  # unbounded along this edge: leave the verdict to HiGHS
            ratio = np.where(down, np.clip(lam_b, 0.0, None) / np.where(down, step, 1.0), np.inf)
            tied = np.flatnonzero(ratio <= ratio.min() * (1 + 1e-12))
            leave = tied[np.argmin(rows[tied])]
            rows[leave] = j
            rows = np.sort(rows)
        return None

    def learn(self, slack: np.ndarray, lam: np.ndarray) -> None:
        """Cache the basis of a solved LP: the rows with positive multipliers, then the
        tightest others (slack = W z - r at its solution)."""
        if self.W.shape[0] > self.W.shape[1]:
            self._add(np.sort(np.lexsort((slack, lam <= 0))[:self.W.shape[1]]))

    def _add(self, rows: np.ndarray) -> bool:
        """Put the basis first in the cache if it is usable; False if not."""
        for j, e in enumerate(self.entries):
            if np.array_equal(rows, e[0]):
                self.entries.insert(0, self.entries.pop(j))
                return True
        m = self.W.shape[0]
        W_b = self.W[rows]
        if m <= len(rows) or np.linalg.cond(W_b) > 1e8:  # z = W_B^{-1} r_B must be accurate well inside SLACK_MARGIN
            return False
        inv = linalg.inv(W_b)
        lam_b = inv[0].copy()  # W_B^{-T} e_1
        if np.any(lam_b < -1e-12 * np.max(np.abs(lam_b))):
            return False  # not dual feasible: a degenerate optimum whose tight rows were picked wrongly
        lam_b = np.clip(lam_b, 0.0, None)
        if np.any((lam_b > 1e-12 * np.max(lam_b)) & (lam_b < 2 * LAMBDA_TOL)):
            return False  # a multiplier neither 0 nor clearly binding: HiGHS' tolerances could pivot it out
        full = np.zeros(m)
        full[rows] = lam_b
        full.flags.writeable = False
        others = np.setdiff1d(np.arange(m), rows)
        W_o = self.W[others]
        abs_W_o = np.abs(W_o)
        self.entries.insert(0, (rows, others, inv, W_o, abs_W_o, self.ABS_MARGIN * abs_W_o.max(axis=1), full))
        del self.entries[self.SIZE:]
        return True


@dataclass
class ConditionalTest:
    """ARP's conditional test of H0(theta) for one polyhedron (module docstring).

    ``accepts(theta)`` is True when theta is NOT rejected at level alpha.  The LP value
    and its multipliers come from the enumerated vertices of the dual polytope (LP
    duality: eta = max over vertices of lambda'(Y - a theta)) when there are at most
    ``VERTEX_LIMIT`` bases, else from warm-started bases (``WarmBases``) or, when they
    cannot vouch for the answer, HiGHS' dual simplex."""

    y: np.ndarray          # A betahat - d  (rows used)
    a: np.ndarray          # A_post l/(l'l)
    X: np.ndarray          # A_post N        (rows x (T_post - 1))
    sigma: np.ndarray      # A Sigma A'
    alpha: float
    sd: np.ndarray = field(init=False)
    W: np.ndarray = field(init=False)
    vertices: np.ndarray | None = field(init=False)
    _primal_cache: dict = field(init=False, default_factory=dict)
    _dual_cache: dict = field(init=False, default_factory=dict)
    _full_rank: dict = field(init=False, default_factory=dict)
    _bases: WarmBases = field(init=False)

    def __post_init__(self):
        self.sd = np.sqrt(np.clip(np.diag(self.sigma), 0.0, None))
        self.W = np.column_stack([self.sd, self.X])
        self.vertices = dual_vertices(self.W, VERTEX_LIMIT) if np.all(self.sd > 0) else None
        self._bases = WarmBases(self.W)

    @classmethod
    def build(cls, poly: Polyhedron, betahat, sigma, l, num_pre, num_post, alpha) -> ConditionalTest:
        rows = _arp_rows(poly.A, num_pre, num_post)
        A = poly.A[rows]
        A_post = A[:, num_pre:]
        N = linalg.null_space(l[None, :]) if num_post > 1 else np.zeros((1, 0))
        return cls(y=A @ betahat - poly.d[rows], a=A_post @ l / (l @ l), X=A_post @ N,
                   sigma=A @ sigma @ A.T, alpha=alpha)

    # -- the LP value and its multipliers
    def _eta(self, y_t: np.ndarray):
        """(eta, lambda) of min eta s.t. y_t - X xi <= eta sd; None if the LP fails."""
        if self.vertices is not None:
            if not len(self.vertices):
                return None
            values = self.vertices @ y_t
            j = int(np.argmax(values))
            return float(values[j]), self.vertices[j]
        known = self._bases.solve(y_t)
        if known is not None:
            return known
        k = self.X.shape[1]
        res = _lp(np.r_[1.0, np.zeros(k)], -self.W, -y_t, method="highs-ds")
        if res.status != 0:
            return None
        lam = -res.ineqlin.marginals
        self._bases.learn(res.ineqlin.residual, lam)
        return float(res.x[0]), lam

    def accepts(self, theta: float) -> bool:
        y_t = self.y - self.a * theta
        sol = self._eta(y_t)
        if sol is None:  # HonestDiD: an LP that did not solve does not reject
            return True
        eta, lam = sol
        k = self.X.shape[1]
        binding = lam > LAMBDA_TOL
        key = binding.tobytes()
        if key not in self._full_rank:
            X_b = self.X[binding]
            self._full_rank[key] = np.linalg.matrix_rank(X_b) == min(X_b.shape) if X_b.size else k == 0
        if binding.sum() == k + 1 and self._full_rank[key]:
            s_b, vlo, vup = self._primal_bounds(y_t, binding)
        else:
            s_b, vlo, vup = self._dual_bounds(y_t, eta, lam)
        if s_b is None:  # the binding combination has no variance (e.g. both rows of a +- pair): eta is exact
            return not eta > 0
        z, zlo, zup = eta / s_b, vlo / s_b, vup / s_b
        if not zlo <= z <= zup:
            return True
        return not z > max(0.0, truncated_normal_quantile(1 - self.alpha, zlo, zup))

    def _primal_bounds(self, y_t, binding):
        key = binding.tobytes()
        if key not in self._primal_cache:
            W_b, W_c = self.W[binding], self.W[~binding]
            v = np.zeros(len(y_t))
            v[binding] = linalg.solve(W_b.T, np.eye(len(W_b))[0])
            s2 = float(v @ self.sigma @ v)
            if math.sqrt(max(s2, 0.0)) < 1e-10:  # v'sd = 1, so s_b is scale-free
                self._primal_cache[key] = None
            else:
                # G y = W_c W_b^{-1} y_B - y_Bc: slack of the non-binding moments at the optimum
                G = -np.eye(len(y_t))[~binding]
                G[:, binding] += W_c @ linalg.inv(W_b)
                self._primal_cache[key] = (v, math.sqrt(s2), G, G @ self.sigma @ v / s2)
        if self._primal_cache[key] is None:
            return None, None, None
        v, s_b, G, rho = self._primal_cache[key]
        ratio = np.divide(-(G @ y_t), rho, out=np.zeros_like(rho), where=rho != 0) + v @ y_t
        vlo = np.max(ratio[rho > 0]) if np.any(rho > 0) else -np.inf
        vup = np.min(ratio[rho < 0]) if np.any(rho < 0) else np.inf
        return s_b, vlo, vup

    def _dual_bounds(self, y_t, eta, gamma):
        s2 = float(gamma @ self.sigma @ gamma)
        if math.sqrt(max(s2, 0.0)) < 1e-10:
            return None, None, None
        b = self.sigma @ gamma / s2
        S = y_t - b * float(gamma @ y_t)
        if self.vertices is not None:
            return (math.sqrt(s2), *self._dual_bounds_exact(gamma, b, S))
        return (math.sqrt(s2), *self._dual_bounds_lp(eta, b, S, math.sqrt(s2)))

    def _dual_bounds_exact(self, gamma, b, S):
        """Ends of {c : max_v lambda_v'(S + b c) = c}: every vertex line p_v + q_v c must
        stay <= c, so vlo = max_{q<1} p/(1-q), vup = min_{q>1} p/(1-q) (gamma's own line
        is p = 0, q = 1)."""
        key = gamma.tobytes()
        if key not in self._dual_cache:
            self._dual_cache[key] = self.vertices @ b
        q = self._dual_cache[key]
        p = self.vertices @ S
        scale = max(1.0, float(np.max(np.abs(q))))
        below, above = q < 1 - 1e-12 * scale, q > 1 + 1e-12 * scale
        vlo = np.max(p[below] / (1 - q[below])) if below.any() else -np.inf
        vup = np.min(p[above] / (1 - q[above])) if above.any() else np.inf
        return vlo, vup

    def _dual_bounds_lp(self, eta, b, S, sigma_b):
        e1 = np.eye(self.W.shape[1])[0]

        def support(c):
            """(max value, argmax) of lambda'(S + b c) over the dual polytope."""
            r = S + b * c
            known = self._bases.solve(r)  # max lambda'r over the polytope is the LP min z_0 s.t. W z >= r
            if known is not None:
                return known
            # At V(c) = c (eta itself, a Newton step landing on the end) the optimum is a tie
            # of gamma's vertex and another one, but callers then use only the value; the
            # tenth keeps clear of HiGHS' own error (up to its 1e-7 tolerances) in V(c).
            known = self._bases.lookup(r, value_only=True)
            if known is not None and abs(known[0] - c) <= DUAL_EQUALITY_TOL / 10:
                return known
            res = _lp(-r, A_eq=self.W.T, b_eq=e1, bounds=(0, None))
            if res.status != 0:
                return np.inf, None
            self._bases.learn(res.lower.marginals, res.x)
            return -res.fun, res.x

        def is_solution(c):
            return abs(support(c)[0] - c) <= DUAL_EQUALITY_TOL

        if not is_solution(eta):  # as HonestDiD: eta not reproduced -> condition on nothing above it
            return eta, np.inf
        vup = self._dual_end(support, is_solution, eta, max(100.0, eta + 20 * sigma_b), b, S)
        vlo = self._dual_end(support, is_solution, eta, min(-100.0, eta - 20 * sigma_b), b, S)
        return vlo, vup

    @staticmethod
    def _dual_end(support, is_solution, eta, far, b, S):
        """The end of the interval {c : V(c) = c} on the side of ``far`` (V convex,
        piecewise linear, V(c) >= c): Newton steps c <- lambda'S/(1 - lambda'b) from
        ``far`` are exact at a kink; bisection between eta and the last iterate if not."""
        value, lam = support(far)
        if abs(value - far) <= DUAL_EQUALITY_TOL:
            return np.inf if far > eta else -np.inf
        c = far
        for _ in range(50):
            if lam is None:
                break
            slope = 1.0 - float(lam @ b)
            if slope == 0:
                break
            nxt = float(lam @ S) / slope
            if not (min(eta, c) <= nxt <= max(eta, c)):
                break
            value, lam_next = support(nxt)
            if abs(value - nxt) <= DUAL_EQUALITY_TOL:
                return nxt
            c, lam = nxt, lam_next
        inside, outside = eta, c
        while abs(outside - inside) > 1e-10 * max(1.0, abs(inside)):
            mid = (inside + outside) / 2
            if is_solution(mid):
                inside = mid
            else:
                outside = mid
        return inside

    def most_plausible_theta(self) -> float | None:
        """argmin_theta of the LP value (theta free): a seed for the grid search."""
        k = self.X.shape[1]
        res = _lp(np.r_[1.0, np.zeros(k + 1)], -np.column_stack([self.sd, self.a, self.X]), -self.y,
                  method="highs-ds")
        return float(res.x[1]) if res.status == 0 else None

    def accepted(self, thetas: np.ndarray) -> np.ndarray:
        """Acceptance at every grid point: all of them when the vertices are enumerated
        (cheap), else ``accepted_on_grid``'s coarse search with bisection."""
        if self.vertices is not None:
            return np.array([self.accepts(float(t)) for t in thetas], dtype=bool)
        return accepted_on_grid(self.accepts, thetas, self.most_plausible_theta())


# --------------------------------------------------------------------------- test inversion on a grid


def accepted_on_grid(accepts: Callable[[float], bool], thetas: np.ndarray, seed: float | None = None
                     ) -> np.ndarray:
    """Acceptance of every grid point, from ~COARSE_POINTS evaluations plus bisection of
    each accept/reject switch (assumes no switch back and forth within one coarse cell)."""
    n = len(thetas)
    stride = max(1, n // COARSE_POINTS)
    probe = set(range(0, n, stride)) | {n - 1}
    if seed is not None and thetas[0] <= seed <= thetas[-1]:
        i = int(np.searchsorted(thetas, seed))
        probe |= {max(i - 1, 0), min(i, n - 1)}
    known: dict[int, bool] = {}

    def at(i):
        if i not in known:
            known[i] = bool(accepts(float(thetas[i])))
        return known[i]

    points = sorted(probe)
    for i in points:
        at(i)
    for left, right in itertools.pairwise(points):
        lo, hi = left, right
        while hi - lo > 1 and at(lo) != at(hi):
            mid = (lo + hi) // 2
            if at(mid) == at(lo):
                lo = mid
            else:
                hi = mid
    out = np.zeros(n, dtype=bool)
    done = sorted(known)
    for left, right in itertools.pairwise(done):
        if known[left] and known[right]:
            out[left:right + 1] = True
    for i in done:
        out[i] = known[i]
    return out


def conditional_ci(polyhedra: Sequence[Polyhedron], betahat, sigma, l, num_pre, num_post, alpha,
                   bounds: tuple[float, float], points: int, widen: bool) -> tuple[float, float, np.ndarray]:
    """[first, last] accepted theta of the union over polyhedra of ARP's conditional
    confidence sets on ``points`` equally spaced values in ``bounds``; the grid doubles
    (``widen``) while the accepted set touches an end or is empty."""
    tests = [ConditionalTest.build(p, betahat, sigma, l, num_pre, num_post, alpha) for p in polyhedra]
    lo, hi = bounds
    for attempt in range(MAX_WIDENINGS + 1):
        thetas = np.linspace(lo, hi, points)
        accept = np.zeros(points, dtype=bool)
        for test in tests:
            accept |= test.accepted(thetas)
        if not widen or attempt == MAX_WIDENINGS or (accept.any() and not (accept[0] or accept[-1])):
            break
        half = hi - lo
        lo, hi = lo - half / 2, hi + half / 2
    if accept[0] or accept[-1]:
        warnings.warn("The conditional confidence set reaches an end of the theta grid; the interval "
                      "may be cut off (widen theta_bounds).", UserWarning, stacklevel=3)
    if not accept.any():
        return np.nan, np.nan, thetas
    idx = np.flatnonzero(accept)
    return float(thetas[idx[0]]), float(thetas[idx[-1]]), thetas


# --------------------------------------------------------------------------- FLCI


def folded_normal_cv(t: float, alpha: float) -> float:
    """cv_alpha(t): the 1 - alpha quantile of |N(t, 1)|, Phi(c - t) - Phi(-c - t) = 1 - alpha.

    It lies in [t + z_{1-alpha}, t + z_{1-alpha/2}]; at the left end when Phi(-c - t)
    vanishes in double precision (t beyond ~ 19)."""
    t = abs(t)
    lo, hi = max(0.0, t + stats.norm.ppf(1 - alpha)), t + stats.norm.ppf(1 - alpha / 2)

    def excess(c):
        return special.ndtr(c - t) - special.ndtr(-c - t) - (1 - alpha)

    if excess(lo) >= 0:
        return lo
    return optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)


def _folded_normal_cv_slope(t: float, c: float) -> float:
    """d cv/dt = (phi(c - t) - phi(c + t)) / (phi(c - t) + phi(c + t))."""
    a, b = stats.norm.pdf(c - t), stats.norm.pdf(c + t)
    return float((a - b) / (a + b))


@dataclass
class FLCIResult:
    lb: float
    ub: float
    estimate: float
    half_length: float
    sd: float
    max_bias: float
    v_pre: np.ndarray      # weights on betahat_pre


def _lasso_path(Q: np.ndarray, q: np.ndarray):
    """Exact path of argmin_g g'Qg/2 + q'g + mu ||g||_1 as mu falls from max|q| to 0.

    Yields segments (mu_lo, mu_hi, active, signs, alpha, beta) with g_active = alpha + mu beta."""
    n = len(q)
    mu = float(np.max(np.abs(q))) if n else 0.0
    if mu == 0.0:
        yield 0.0, 0.0, np.zeros(0, dtype=int), np.zeros(0), np.zeros(0), np.zeros(0)
        return
    j = int(np.argmax(np.abs(q)))
    signs = {j: -np.sign(q[j])}
    for _ in range(20 * n + 20):
        act = np.array(sorted(signs))
        s = np.array([signs[i] for i in act])
        Q_aa = Q[np.ix_(act, act)]
        alpha = -linalg.solve(Q_aa, q[act], assume_a="pos")
        beta = -linalg.solve(Q_aa, s, assume_a="pos")
        ceiling = mu * (1 - 1e-12)
        events = []  # (mu, kind, index)
        for pos, i in enumerate(act):
            if beta[pos] != 0:
                m = -alpha[pos] / beta[pos]
                if 0 < m < ceiling:
                    events.append((m, "leave", i))
        rest = np.setdiff1d(np.arange(n), act)
        if rest.size:
            a_r = Q[np.ix_(rest, act)] @ alpha + q[rest]
            b_r = Q[np.ix_(rest, act)] @ beta
            for i, a_i, b_i in zip(rest, a_r, b_r):
                for m in ((a_i / (1 - b_i)) if b_i != 1 else -1.0, (-a_i / (1 + b_i)) if b_i != -1 else -1.0):
                    if 0 < m < ceiling:
                        events.append((m, "enter", i))
        nxt = max(events, default=(0.0, "end", -1))
        yield nxt[0], mu, act, s, alpha, beta
        if nxt[1] == "end":
            return
        m, kind, i = nxt
        if kind == "leave":
            del signs[i]
        else:
            grad = Q[i, act] @ (alpha + m * beta) + q[i]
            signs[i] = -np.sign(grad)
        mu = m
    raise RuntimeError("the FLCI lasso path did not terminate")


@dataclass
class _FLCIProblem:
    """min_g sd(g) cv_alpha(M (K + ||g||_1) / sd(g)), sd^2 = g'Qg + 2q'g + c0."""

    Q: np.ndarray
    q: np.ndarray
    c0: float
    K: float
    m: float
    alpha: float

    def at(self, g: np.ndarray) -> tuple[float, float, float]:
        """(half-length, sd, worst-case bias) of the estimator g."""
        sd = math.sqrt(max(float(g @ self.Q @ g + 2 * self.q @ g + self.c0), 0.0))
        bias = self.m * (self.K + float(np.abs(g).sum()))
        if sd == 0:
            return (0.0 if bias == 0 else np.inf), sd, bias
        return sd * folded_normal_cv(bias / sd, self.alpha), sd, bias

    def slope(self, seg, mu: float) -> float:
        """d half-length / d mu along a path segment (g_A = alpha + mu beta, signs s)."""
        act, s, alpha_, beta_ = seg
        g_a = alpha_ + mu * beta_
        g = np.zeros(len(self.q))
        g[act] = g_a
        _, sd, bias = self.at(g)
        t = bias / sd
        c = folded_normal_cv(t, self.alpha)
        dc = _folded_normal_cv_slope(t, c)
        d_sd = float((self.Q[np.ix_(act, act)] @ g_a + self.q[act]) @ beta_) / sd
        return d_sd * (c - t * dc) + self.m * float(s @ beta_) * dc

    def best_on_segment(self, mu_lo: float, mu_hi: float, seg):
        """Smallest half-length on one linear piece of the path: its ends and the roots
        of the slope (sign change from - to + on 9 points, then brentq)."""
        act, _, alpha_, beta_ = seg
        candidates = [mu_lo, mu_hi]
        if mu_hi > mu_lo and act.size:
            knots = np.linspace(mu_lo, mu_hi, 9)
            slopes = [self.slope(seg, x) for x in knots]
            for (x0, x1), (f0, f1) in zip(itertools.pairwise(knots), itertools.pairwise(slopes)):
                if f0 < 0 < f1:
                    candidates.append(self._root(seg, x0, x1))
        best = None
        for mu in candidates:
            g = np.zeros(len(self.q))
            g[act] = alpha_ + mu * beta_
            half, sd, bias = self.at(g)
            if best is None or half < best[0]:
                best = (half, g, sd, bias)
        return best

    def _root(self, seg, x0: float, x1: float) -> float:
        return optimize.brentq(lambda x: self.slope(seg, x), x0, x1, xtol=1e-15 * max(abs(x1), 1e-300),
                               rtol=4 * np.finfo(float).eps)


def _flci_problem(sigma, num_pre, num_post, l, m, alpha):
    """The FLCI problem in g = (g_{-T_pre+1}, ..., g_{-1}) and the map g -> v = V_g g + v0."""
    t_pre = np.arange(-num_pre, 0, dtype=float)
    t_post = np.arange(1, num_post + 1, dtype=float)
    # g_u = sum_{t<u} v_t (u - t), u = -T_pre+1..0: unit lower triangular in v
    u = np.arange(-num_pre + 1, 1, dtype=float)
    L = np.where(t_pre[None, :] < u[:, None], u[:, None] - t_pre[None, :], 0.0)
    L_inv = linalg.solve_triangular(L, np.eye(num_pre), lower=True)
    g0 = float(t_post @ l)
    V_g, v0 = L_inv[:, :-1], L_inv[:, -1] * g0
    S_pp, S_pq, S_qq = sigma[:num_pre, :num_pre], sigma[:num_pre, num_pre:], sigma[num_pre:, num_pre:]
    Q = V_g.T @ S_pp @ V_g
    if Q.size and np.linalg.eigvalsh(Q)[0] <= 1e-14 * max(1.0, float(np.max(np.abs(Q)))):
        raise ValueError("sigma's pre-period block must be positive definite for the FLCI.")
    q = V_g.T @ (S_pp @ v0 + S_pq @ l)
    c0 = float(v0 @ S_pp @ v0 + 2 * v0 @ S_pq @ l + l @ S_qq @ l)
    post_bias = sum(abs(float(l[t_post > w] @ (t_post[t_post > w] - w))) for w in range(1, num_post))
    return _FLCIProblem(Q, q, c0, post_bias + abs(g0), float(m), alpha), V_g, v0


def flci(betahat, sigma, num_pre: int, num_post: int, l: np.ndarray, m: float, alpha: float) -> FLCIResult:
    """Optimal fixed-length CI for theta under Delta^SD(M) (module docstring): the best
    point of the exact lasso path of min sd^2(g) + 2 mu ||g||_1."""
    problem, V_g, v0 = _flci_problem(sigma, num_pre, num_post, l, m, alpha)
    best = None
    for mu_lo, mu_hi, act, s, alpha_, beta_ in _lasso_path(problem.Q, problem.q):
        found = problem.best_on_segment(mu_lo, mu_hi, (act, s, alpha_, beta_))
        if best is None or found[0] < best[0]:
            best = found
    half, g, sd, bias = best
    v = V_g @ g + v0
    estimate = float(v @ betahat[:num_pre] + l @ betahat[num_pre:])
    return FLCIResult(estimate - half, estimate + half, estimate, half, sd, bias, v)


def smoothness_max_bias(num_pre: int, num_post: int, l: np.ndarray, m: float) -> float:
    """sup {l'delta_post : delta in Delta^SD(M), delta_pre = 0}: half-width of the
    identified set when the pre-period coefficients are exactly zero (an LP)."""
    poly = smoothness_polyhedron(num_pre, num_post, m)
    lo, hi = polyhedron_identified_set(poly, np.zeros(num_pre + num_post), l, num_pre)
    return float(max(abs(lo), abs(hi)))


# --------------------------------------------------------------------------- results


@dataclass
class HonestResult:
    """Robust confidence intervals by M (or Mbar) and the original CI.

    ``rows``: one row per (M, method) with columns M, lb, ub, method."""

    restriction: str
    l_vec: np.ndarray
    alpha: float
    num_pre: int
    num_post: int
    estimate: float
    se: float
    original: tuple[float, float]
    rows: pd.DataFrame

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(self.rows["method"]))

    def robust(self, method: str | None = None) -> pd.DataFrame:
        method = method or PRIMARY_CI[self.restriction]
        if method not in self.methods:
            raise ValueError(f"method {method!r} was not computed; this result has {self.methods}.")
        return self.rows[self.rows["method"] == method].sort_values("M").reset_index(drop=True)

    def breakdown_value(self, method: str | None = None) -> float | None:
        """The smallest M of the grid whose robust CI contains 0 (None if none does)."""
        for row in self.robust(method).itertuples():
            if row.lb <= 0 <= row.ub:
                return float(row.M)
        return None

    def to_dict(self) -> dict:
        def num(x):
            return None if x is None or not np.isfinite(x) else float(x)

        return {
            "restriction": self.restriction,
            "parameter": "Mbar" if self.restriction == "relative_magnitude" else "M",
            "l_vec": [float(x) for x in self.l_vec],
            "alpha": self.alpha,
            "num_pre": self.num_pre,
            "num_post": self.num_post,
            "original": {"estimate": num(self.estimate), "se": num(self.se),
                         "lb": num(self.original[0]), "ub": num(self.original[1])},
            "rows": [{"M": num(r.M), "lb": num(r.lb), "ub": num(r.ub), "method": r.method}
                     for r in self.rows.itertuples()],
            "breakdown": {m: self.breakdown_value(m) for m in self.methods},
        }


def _default_grid(restriction, betahat, sigma, num_pre):
    """Mbar: 0..2 (HonestDiD).  M: 0 to the largest |pre-period second difference| +
    z_{0.95} se (HonestDiD's DeltaSD_upperBound_Mpre, which needs 3 pre periods; with 2
    the reference period's 0 is the third point, with 1 the bound is sd(beta_{-1}))."""
    if restriction == "relative_magnitude":
        return np.linspace(0.0, 2.0, 10)
    if num_pre == 1:
        return np.linspace(0.0, math.sqrt(sigma[0, 0]), 10)
    width = num_pre if num_pre >= 3 else num_pre + 1
    S = _differences(2, width - 1, 0)[:, :num_pre]
    diffs = S @ betahat[:num_pre]
    se = np.sqrt(np.diag(S @ sigma[:num_pre, :num_pre] @ S.T))
    return np.linspace(0.0, float(np.max(np.abs(diffs) + stats.norm.ppf(0.95) * se)), 10)


def honest_sensitivity(betahat, sigma, num_pre: int, num_post: int, *, method: str = "relative_magnitude",
                       grid=None, l_vec=None, alpha: float = 0.05, ci: Sequence[str] | str | None = None,
                       theta_points: int = 1000, theta_bounds: tuple[float, float] | None = None
                       ) -> HonestResult:
    """Rambachan-Roth sensitivity analysis of theta = l'tau_post.

    ``method``: "relative_magnitude" (Delta^RM(Mbar), ``grid`` = Mbar values, default
    0..2 in 10 steps) or "smoothness" (Delta^SD(M), ``grid`` = M values, default 0 to
    HonestDiD's pre-period upper bound in 10 steps).  ``ci``: which robust CIs -
    "Conditional" (ARP, the only one for RM) and/or "FLCI" (SD; default both, FLCI
    first).  ``theta_points``/``theta_bounds``: the grid over which the conditional test
    is inverted (default bounds: see the module docstring, widened when the set touches
    an end; explicit bounds are used as given).  The original CI is
    l'betahat_post +- z_{1-alpha/2} sqrt(l' Sigma_post l)."""
    b, s = _validated(betahat, sigma, num_pre, num_post, alpha)
    num_pre, num_post = int(num_pre), int(num_post)
    if method not in RESTRICTIONS:
        raise ValueError(f"method must be one of {RESTRICTIONS}; got {method!r}.")
    l = target_vector(l_vec, num_post)
    cis = DEFAULT_CI[method] if ci is None else ((ci,) if isinstance(ci, str) else tuple(ci))
    allowed = ("Conditional",) if method == "relative_magnitude" else CI_METHODS
    if not cis or any(c not in allowed for c in cis):
        raise ValueError(f"ci for {method} must be among {allowed}; got {ci!r}.")
    values = _default_grid(method, b, s, num_pre) if grid is None else np.atleast_1d(np.asarray(grid, dtype=float))
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("grid must hold finite, non-negative values of M (or Mbar).")
    if int(theta_points) < 2:
        raise ValueError(f"theta_points must be at least 2; got {theta_points}.")
    if theta_bounds is not None and not (np.all(np.isfinite(theta_bounds)) and theta_bounds[0] < theta_bounds[1]):
        raise ValueError(f"theta_bounds must be two finite numbers (lower, upper) with lower < upper; got {theta_bounds}.")

    estimate = float(l @ b[num_pre:])
    se = math.sqrt(max(float(l @ s[num_pre:, num_pre:] @ l), 0.0))
    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for value in values:
        for which in cis:
            lb, ub = _robust_ci(method, which, float(value), b, s, num_pre, num_post, l, alpha, se,
                                int(theta_points), theta_bounds)
            rows.append({"M": float(value), "lb": lb, "ub": ub, "method": which})
    frame = pd.DataFrame(rows, columns=["M", "lb", "ub", "method"])
    return HonestResult(method, l, alpha, num_pre, num_post, estimate, se, (estimate - z * se, estimate + z * se),
                        frame)


def _robust_ci(restriction, which, value, b, s, num_pre, num_post, l, alpha, se, points, theta_bounds):
    if which == "FLCI":
        res = flci(b, s, num_pre, num_post, l, value, alpha)
        return res.lb, res.ub
    if restriction == "relative_magnitude":
        polyhedra = relative_magnitude_polyhedra(num_pre, num_post, value)
        if theta_bounds is None:
            id_set = identified_set(polyhedra, b, l, num_pre)
            centre = (id_set[0], id_set[1]) if id_set is not None else (float(l @ b[num_pre:]),) * 2
            bounds = (centre[0] - 20 * se, centre[1] + 20 * se)
    else:
        polyhedra = [smoothness_polyhedron(num_pre, num_post, value)]
        if theta_bounds is None:
            extrapolated = flci(b, s, num_pre, num_post, l, 0.0, alpha)
            half = smoothness_max_bias(num_pre, num_post, l, value) + 20 * max(se, extrapolated.sd)
            bounds = (extrapolated.estimate - half, extrapolated.estimate + half)
    if theta_bounds is not None:
        bounds = (float(theta_bounds[0]), float(theta_bounds[1]))
    lb, ub, _ = conditional_ci(polyhedra, b, s, l, num_pre, num_post, alpha, bounds, points,
                               widen=theta_bounds is None)
    return lb, ub


# --------------------------------------------------------------------------- figure


def honest_figure(result: HonestResult, ax=None):
    """Robust CIs (bars) by M, one series per method, beside the original CI; returns the Axes."""
    if ax is None:
        from .figures import _pyplot

        _, ax = _pyplot().subplots(figsize=(7.5, 4.2))
    values = np.sort(result.rows["M"].unique())
    step = float(np.min(np.diff(values))) if values.size > 1 else max(float(values[0]), 1.0)
    methods = result.methods
    width = 0.5 * step / max(len(methods), 1)
    colours = {"FLCI": "#1f4e79", "Conditional": "#b5542c"}
    ax.axhline(0.0, color="0.4", lw=0.8)
    x0 = float(values[0]) - step
    ax.errorbar([x0], [result.estimate], yerr=[[result.estimate - result.original[0]],
                                               [result.original[1] - result.estimate]],
                fmt="o", color="0.2", capsize=3, label="Original")
    for j, method in enumerate(methods):
        part = result.robust(method)
        x = part["M"].to_numpy() + (j - (len(methods) - 1) / 2) * width
        mid = (part["lb"] + part["ub"]).to_numpy() / 2
        ax.errorbar(x, mid, yerr=[mid - part["lb"].to_numpy(), part["ub"].to_numpy() - mid], fmt="none",
                    ecolor=colours.get(method, None), capsize=3, lw=1.4, label=method)
    ax.set_xticks([x0, *values])
    ax.set_xticklabels(["Orig."] + [f"{v:g}" for v in values])
    ax.set_xlabel("Mbar" if result.restriction == "relative_magnitude" else "M")
    ax.set_ylabel(f"{1 - result.alpha:.0%} CI for theta")
    ax.legend(frameon=False, fontsize=8)
    return ax
