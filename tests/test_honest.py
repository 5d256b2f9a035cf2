"""Rambachan-Roth sensitivity analysis (estimation/engine/honest.py) against moderndid 0.2.0
(the Python port of HonestDiD), closed forms and properties.

moderndid departs from HonestDiD in two places, which the tests work around (see the
methods note): its Delta^RM union skips the earliest pre-period difference (so its
inputs get a dummy earliest pre period that no post-period moment involves), and its
one-post-period conditional test compares max(A~y - d~) with a critical value for A~y
when d != 0 (so Delta^SD's d is moved into betahat as a zero-variance coefficient).
"""
from __future__ import annotations

import json
import math
import sys
import types
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from estimation.engine import honest as H
from estimation.engine.honest import honest_figure, honest_sensitivity

try:
    import cvxpy  # noqa: F401
    HAS_CVXPY = True
except ImportError:
    HAS_CVXPY = False


def _import_didhonest():
    """moderndid.didhonest imports cvxpy at package level, but only its FLCI calls it:
    without cvxpy a stub lets the ARP functions load (FLCI comparisons are skipped)."""
    if HAS_CVXPY:
        import moderndid.didhonest as dh
        return dh
    sys.modules["cvxpy"] = types.ModuleType("cvxpy")
    try:
        import moderndid.didhonest as dh
    finally:
        del sys.modules["cvxpy"]
    return dh


dh = _import_didhonest()
needs_cvxpy = pytest.mark.skipif(not HAS_CVXPY, reason="moderndid's FLCI needs cvxpy (moderndid[didhonest])")

# INPUT, not an expected output: moderndid's att_gt(est_method="dr") + aggte("dynamic") on
# its shipped mpdta (lemp), event times -3..3 with the reference -1 dropped, and the
# variance of the influence functions (V = psi'psi / n^2): 2 pre and 4 post periods.
MPDTA_BETA = np.array([0.03050665558329261, -0.0005630846263854, -0.01993181678925938,
                       -0.05095736706519374, -0.13725873888940268, -0.10081136308540371])
MPDTA_SIGMA = np.array([
    [2.2600793469630364e-04, -2.0837209617147466e-05, 1.8784908458361904e-05, 2.7448871150234471e-05,
     7.1686695649746349e-05, 7.3744789507038038e-05],
    [-2.0837209617147466e-05, 1.7666781980265706e-04, -4.9583357913754164e-06, 2.3177360680854989e-06,
     3.5388312724308641e-05, 3.2646125354018526e-05],
    [1.8784908458361904e-05, -4.9583357913754164e-06, 1.3986288683373016e-04, 6.1531622124481194e-05,
     4.3721145323154644e-05, 6.5621801075213028e-05],
    [2.7448871150234471e-05, 2.3177360680854989e-06, 6.1531622124481194e-05, 2.8538954044038454e-04,
     3.6040104574268773e-04, 3.2527364680579388e-04],
    [7.1686695649746349e-05, 3.5388312724308641e-05, 4.3721145323154644e-05, 3.6040104574268773e-04,
     1.3275576320849684e-03, 8.6557381518815896e-04],
    [7.3744789507038038e-05, 3.2646125354018526e-05, 6.5621801075213028e-05, 3.2527364680579388e-04,
     8.6557381518815896e-04, 1.1805563999580568e-03]])
MPDTA_BOUNDS = (-0.6, 0.5)  # theta grid for the conditional CIs, shared with moderndid


def _random_design(num_pre=4, num_post=3, seed=20230917):
    """A random positive-definite sigma and a draw of betahat around a mild pre-trend."""
    r = np.random.default_rng(seed)
    n = num_pre + num_post
    G = r.normal(size=(n, n))
    sigma = (G @ G.T / n + 0.5 * np.eye(n)) * 0.01
    mean = np.r_[np.linspace(-0.01 * num_pre, -0.01, num_pre), np.linspace(0.1, 0.2, num_post)]
    return mean + np.linalg.cholesky(sigma) @ r.normal(size=n), sigma


RANDOM_BETA, RANDOM_SIGMA = _random_design()
RANDOM_BOUNDS = (-2.0, 2.5)


def _pad_for_moderndid(beta, sigma):
    """A dummy earliest pre period equal to the first one (difference 0, variance 1, no
    covariance): moderndid's s-range then covers all our pre-period differences, and no
    post-period moment - the only ones its test uses when T_post > 1 - involves it."""
    padded = np.zeros((len(beta) + 1,) * 2)
    padded[0, 0], padded[1:, 1:] = 1.0, sigma
    return np.r_[beta[0], beta], padded


# ----------------------------------------------------------------------------- relative magnitudes


def test_rm_identified_set_is_the_closed_form_with_every_pre_difference():
    """For l >= 0 the Delta^RM(Mbar) identified set is l'beta_post -+ Mbar maxpre sum_t t l_t,
    maxpre the largest |first difference| of (beta_pre, 0) - the earliest one included."""
    beta = np.array([0.30, 0.02, -0.01, 0.5, 0.6, 0.4])  # earliest difference (-0.28) the largest
    maxpre = np.max(np.abs(np.diff(np.r_[beta[:3], 0.0])))
    assert maxpre == pytest.approx(0.28)
    for l in (np.array([1.0, 0, 0]), np.full(3, 1 / 3), np.array([0.2, 0.0, 0.5])):
        for mbar in (0.0, 0.5, 2.0):
            lo, hi = H.identified_set(H.relative_magnitude_polyhedra(3, 3, mbar), beta, l, 3)
            half = mbar * maxpre * float(np.arange(1, 4) @ l)
            assert lo == pytest.approx(l @ beta[3:] - half, abs=1e-12)
            assert hi == pytest.approx(l @ beta[3:] + half, abs=1e-12)


def test_moderndid_drops_the_earliest_pre_difference():
    """Why the comparisons pad moderndid's input: its s runs over -(T_pre-1)..-1 (0-based),
    HonestDiD's over -(T_pre-1)..0 (1-based), so the earliest difference is never the max."""
    beta = np.array([0.30, 0.02, -0.01, 0.5, 0.6, 0.4])
    l = np.array([1.0, 0, 0])
    ours = H.identified_set(H.relative_magnitude_polyhedra(3, 3, 1.0), beta, l, 3)
    theirs = dh.compute_identified_set_rm(1.0, beta, l, 3, 3)
    assert theirs.id_ub - theirs.id_lb < 1e-12 < ours[1] - ours[0]
    padded_beta, _ = _pad_for_moderndid(beta, np.eye(6))
    padded = dh.compute_identified_set_rm(1.0, padded_beta, l, 4, 3)
    assert (padded.id_lb, padded.id_ub) == pytest.approx(ours, abs=1e-12)


def _compare_rm(beta, sigma, num_pre, num_post, l_vec, mbars, bounds):
    ours = honest_sensitivity(beta, sigma, num_pre, num_post, method="relative_magnitude", grid=mbars,
                              l_vec=l_vec, theta_bounds=bounds)
    l = H.target_vector(l_vec, num_post)
    theirs = dh.create_sensitivity_results_rm(*_pad_for_moderndid(beta, sigma), num_pre + 1, num_post,
                                              method="Conditional", m_bar_vec=mbars, l_vec=l,
                                              grid_lb=bounds[0], grid_ub=bounds[1], grid_points=1000)
    # Both report the first and last accepted point of the same np.linspace grid: equal
    # decisions there give the same floats (a flipped decision would move a bound by a
    # whole grid step, 1e-3 of the grid's width).
    step = (bounds[1] - bounds[0]) / 999
    np.testing.assert_allclose(ours.rows["lb"], theirs["lb"].to_numpy(), rtol=0, atol=1e-9 * step)
    np.testing.assert_allclose(ours.rows["ub"], theirs["ub"].to_numpy(), rtol=0, atol=1e-9 * step)
    return ours


def test_rm_conditional_matches_moderndid_on_mpdta():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare_rm(MPDTA_BETA, MPDTA_SIGMA, 2, 4, None, [1.0], MPDTA_BOUNDS)
        res = _compare_rm(MPDTA_BETA, MPDTA_SIGMA, 2, 4, "average", [0.5, 1.0], MPDTA_BOUNDS)
    assert res.rows["lb"].iloc[0] < res.estimate < res.rows["ub"].iloc[0]


def test_rm_conditional_matches_moderndid_on_random_design():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare_rm(RANDOM_BETA, RANDOM_SIGMA, 4, 3, "average", [0.5, 1.0], RANDOM_BOUNDS)


def test_rm_one_post_period_matches_moderndid_per_polyhedron():
    """T_post = 1: no nuisance parameter and every row of A is used, so padding would change
    the test; instead moderndid's no-nuisance CI (correct when d = 0) is run on each of our
    polyhedra and the union compared."""
    beta, sigma = _random_design(num_pre=3, num_post=1, seed=5)
    bounds, points = (-1.5, 1.5), 400  # moderndid tests every point here: a coarser grid keeps it quick
    thetas = np.linspace(*bounds, points)
    for mbar in (0.8,):
        polys = H.relative_magnitude_polyhedra(3, 1, mbar)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            accept = np.zeros(points, dtype=bool)
            for p in polys:
                res = dh.compute_arp_ci(beta, sigma, p.A, p.d, 3, 1, alpha=0.05, grid_lb=bounds[0],
                                        grid_ub=bounds[1], grid_points=points)
                accept |= res.accept_grid
            ours = honest_sensitivity(beta, sigma, 3, 1, grid=[mbar], theta_bounds=bounds, theta_points=points)
        assert (ours.rows["lb"].iloc[0], ours.rows["ub"].iloc[0]) == (thetas[accept][0], thetas[accept][-1])


# ----------------------------------------------------------------------------- smoothness: conditional


def _compare_sd_conditional(beta, sigma, num_pre, num_post, l_vec, ms, bounds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = honest_sensitivity(beta, sigma, num_pre, num_post, method="smoothness", grid=ms, l_vec=l_vec,
                                  ci="Conditional", theta_bounds=bounds)
        theirs = dh.create_sensitivity_results_sm(beta, sigma, num_pre, num_post, method="Conditional", m_vec=ms,
                                                  l_vec=H.target_vector(l_vec, num_post), grid_lb=bounds[0],
                                                  grid_ub=bounds[1], grid_points=1000)
    step = (bounds[1] - bounds[0]) / 999  # same grid: see _compare_rm
    np.testing.assert_allclose(ours.rows["lb"], theirs["lb"].to_numpy(), rtol=0, atol=1e-9 * step)
    np.testing.assert_allclose(ours.rows["ub"], theirs["ub"].to_numpy(), rtol=0, atol=1e-9 * step)


def test_sd_conditional_matches_moderndid():
    _compare_sd_conditional(MPDTA_BETA, MPDTA_SIGMA, 2, 4, None, [0.0, 0.01, 0.03], MPDTA_BOUNDS)
    _compare_sd_conditional(RANDOM_BETA, RANDOM_SIGMA, 4, 3, "average", [0.0, 0.05, 0.2], RANDOM_BOUNDS)


def test_sd_conditional_one_post_period_matches_moderndid_with_d_moved_into_betahat():
    """E[A y] <= d  is  E[[-d, A] (1, y)] <= 0: a leading coefficient fixed at 1 (variance
    0) carries d, so moderndid's no-nuisance test, exact when d = 0, can check ours."""
    beta, sigma = _random_design(num_pre=3, num_post=1, seed=11)
    bounds = (-1.5, 1.5)
    thetas = np.linspace(*bounds, 1000)
    for m in (0.0, 0.1, 0.4):
        p = H.smoothness_polyhedron(3, 1, m)
        sigma1 = np.zeros((5, 5))
        sigma1[1:, 1:] = sigma
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = dh.compute_arp_ci(np.r_[1.0, beta], sigma1, np.column_stack([-p.d, p.A]), np.zeros(len(p.d)),
                                    4, 1, alpha=0.05, grid_lb=bounds[0], grid_ub=bounds[1], grid_points=1000)
            ours = honest_sensitivity(beta, sigma, 3, 1, method="smoothness", grid=[m], ci="Conditional",
                                      theta_bounds=bounds)
        accepted = thetas[res.accept_grid]
        assert (ours.rows["lb"].iloc[0], ours.rows["ub"].iloc[0]) == (accepted[0], accepted[-1])


# ----------------------------------------------------------------------------- smoothness: FLCI


@needs_cvxpy
@pytest.mark.parametrize("design", ["mpdta", "random"])
def test_flci_matches_moderndid(design):
    """moderndid golden-sections the sd bound h to ~1e-6 relative and solves each inner
    SOCP with CLARABEL (~1e-8): the half-length, flat at the optimum, agrees to ~1e-7;
    the estimator's weights move first-order with h, so the end points agree to ~1e-6 of
    the half-length (1e-5 allowed).  Near M = 0 the optimum sits at the edge h = h_min,
    where moderndid's weights are off by O(sqrt(1e-6)) - M = 0 is checked in closed form."""
    if design == "mpdta":
        beta, sigma, num_pre, num_post, ms = MPDTA_BETA, MPDTA_SIGMA, 2, 4, [0.005, 0.02, 0.05]
    else:
        beta, sigma, num_pre, num_post, ms = RANDOM_BETA, RANDOM_SIGMA, 4, 3, [0.02, 0.1, 0.3]
    for l_vec in (None, "average"):
        l = H.target_vector(l_vec, num_post)
        res = honest_sensitivity(beta, sigma, num_pre, num_post, method="smoothness", grid=ms, l_vec=l_vec, ci="FLCI")
        for m, lb, ub in zip(ms, res.rows["lb"], res.rows["ub"]):
            theirs = dh.compute_flci(beta, sigma, m, num_pre, num_post, l, alpha=0.05)
            half = (ub - lb) / 2
            assert half == pytest.approx(theirs.optimal_half_length, rel=1e-6)
            assert lb == pytest.approx(theirs.flci[0], abs=1e-5 * half)
            assert ub == pytest.approx(theirs.flci[1], abs=1e-5 * half)


def _linear_extrapolation_ci(beta, sigma, num_pre, num_post, l, alpha=0.05):
    """min Var(l'b_post + v'b_pre) s.t. t_pre'v = -t_post'l (unbiased for linear trends):
    v = S_pp^-1 (-S_pq l + k t_pre), k fixed by the constraint."""
    t_pre, t_post = np.arange(-num_pre, 0.0), np.arange(1.0, num_post + 1)
    S_pp, S_pq = sigma[:num_pre, :num_pre], sigma[:num_pre, num_pre:]
    a, c = np.linalg.solve(S_pp, -S_pq @ l), np.linalg.solve(S_pp, t_pre)
    v = a + c * (-(t_post @ l) - t_pre @ a) / (t_pre @ c)
    est = v @ beta[:num_pre] + l @ beta[num_pre:]
    w = np.r_[v, l]
    half = stats.norm.ppf(1 - alpha / 2) * math.sqrt(w @ sigma @ w)
    return est - half, est + half


@pytest.mark.parametrize("design", ["mpdta", "random"])
def test_flci_at_m0_is_the_linear_extrapolation_ci(design):
    beta, sigma, num_pre, num_post = ((MPDTA_BETA, MPDTA_SIGMA, 2, 4) if design == "mpdta"
                                      else (RANDOM_BETA, RANDOM_SIGMA, 4, 3))
    for l_vec in (None, "average"):
        res = honest_sensitivity(beta, sigma, num_pre, num_post, method="smoothness", grid=[0.0], l_vec=l_vec,
                                 ci="FLCI")
        expected = _linear_extrapolation_ci(beta, sigma, num_pre, num_post, H.target_vector(l_vec, num_post))
        np.testing.assert_allclose([res.rows["lb"][0], res.rows["ub"][0]], expected, rtol=1e-10)


def test_flci_bias_is_the_worst_case_over_delta_sd():
    """The closed-form worst-case bias of the chosen estimator equals the LP
    sup {v'delta_pre + l'delta_post : delta in Delta^SD(M)}."""
    for num_pre, num_post, seed in ((4, 3, 1), (2, 4, 2), (1, 2, 3), (3, 1, 4)):
        beta, sigma = _random_design(num_pre, num_post, seed)
        l = np.random.default_rng(seed).uniform(0.1, 1, num_post)
        res = H.flci(beta, sigma, num_pre, num_post, l, 0.3, 0.05)
        p = H.smoothness_polyhedron(num_pre, num_post, 0.3)
        lp = optimize.linprog(-np.r_[res.v_pre, l], A_ub=p.A, b_ub=p.d, bounds=(None, None), method="highs")
        assert res.max_bias == pytest.approx(-lp.fun, rel=1e-9)


def _flci_half_length(v, l, sigma, num_pre, num_post, m, alpha=0.05):
    """sd(v) cv(bias/sd) with the worst-case bias by LP over Delta^SD(M)."""
    w = np.r_[v, l]
    sd = math.sqrt(w @ sigma @ w)
    p = H.smoothness_polyhedron(num_pre, num_post, m)
    bias = -optimize.linprog(-w, A_ub=p.A, b_ub=p.d, bounds=(None, None), method="highs").fun
    return sd * H.folded_normal_cv(bias / sd, alpha)


def test_flci_is_a_local_minimum():
    """No perturbation of the pre-period weights (keeping unbiasedness for linear trends)
    shortens the CI: checks the lasso-path search independently of moderndid."""
    r = np.random.default_rng(0)
    for num_pre, num_post, m in ((4, 3, 0.05), (4, 3, 0.2), (2, 4, 0.01), (5, 2, 0.1)):
        beta, sigma = _random_design(num_pre, num_post, num_pre)
        l = np.full(num_post, 1 / num_post)
        res = H.flci(beta, sigma, num_pre, num_post, l, m, 0.05)
        t_pre, t_post = np.arange(-num_pre, 0.0), np.arange(1.0, num_post + 1)
        args = (l, sigma, num_pre, num_post, m)
        assert _flci_half_length(res.v_pre, *args) == pytest.approx(res.half_length, rel=1e-9)
        for _ in range(15):
            step = r.normal(size=num_pre) * 1e-3 * np.abs(res.v_pre).max()
            step -= t_pre * (t_pre @ step) / (t_pre @ t_pre)  # stay unbiased for linear trends
            assert _flci_half_length(res.v_pre + step, *args) >= res.half_length * (1 - 1e-12)
        assert t_pre @ res.v_pre == pytest.approx(-(t_post @ l), abs=1e-12)


# ----------------------------------------------------------------------------- properties


def test_robust_cis_widen_with_m():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rm = honest_sensitivity(MPDTA_BETA, MPDTA_SIGMA, 2, 4, grid=[0, 0.25, 0.5, 1, 2], theta_bounds=MPDTA_BOUNDS)
        sd = honest_sensitivity(MPDTA_BETA, MPDTA_SIGMA, 2, 4, method="smoothness", grid=[0, 0.005, 0.01, 0.02, 0.04],
                                theta_bounds=MPDTA_BOUNDS)
    frames = [rm.robust(), sd.robust("FLCI"), sd.robust("Conditional")]
    for f in frames:
        assert np.all(np.diff(f["lb"]) <= 0) and np.all(np.diff(f["ub"]) >= 0)  # nested (same theta grid)
    assert np.all(np.diff(sd.robust("FLCI")["ub"] - sd.robust("FLCI")["lb"]) > 0)
    # at M = 0 the RM set is parallel trends: the conditional CI is close to the original
    lb0, ub0 = rm.robust()[["lb", "ub"]].iloc[0]
    assert abs(lb0 - rm.original[0]) < 0.2 * rm.se and abs(ub0 - rm.original[1]) < 0.2 * rm.se


def test_original_ci_matches_moderndid():
    for l_vec in (None, "average"):
        res = honest_sensitivity(MPDTA_BETA, MPDTA_SIGMA, 2, 4, method="smoothness", grid=[0.01], l_vec=l_vec,
                                 ci="FLCI")
        theirs = dh.construct_original_cs(MPDTA_BETA, MPDTA_SIGMA, 2, 4, l_vec=H.target_vector(l_vec, 4))
        np.testing.assert_allclose(res.original, (theirs.lb, theirs.ub), rtol=1e-12)


def test_vertex_enumeration_and_lp_give_the_same_decisions(monkeypatch):
    """The exact vertex route (default when small) and the HiGHS route (LP value, dual
    simplex multipliers, Newton/bisection truncation in the degenerate case) agree."""
    for l_vec, mbar in ((None, 1.0), ("average", 0.5)):
        l = H.target_vector(l_vec, 4)
        poly = H.relative_magnitude_polyhedra(2, 4, mbar)[1]
        exact = H.ConditionalTest.build(poly, MPDTA_BETA, MPDTA_SIGMA, l, 2, 4, 0.05)
        monkeypatch.setattr(H, "VERTEX_LIMIT", 0)
        lp = H.ConditionalTest.build(poly, MPDTA_BETA, MPDTA_SIGMA, l, 2, 4, 0.05)
        monkeypatch.undo()
        assert exact.vertices is not None and lp.vertices is None
        thetas = np.linspace(-0.35, 0.25, 1000)
        accept = exact.accepted(thetas)
        edges = np.flatnonzero(np.diff(accept.astype(int)))
        probe = np.unique(np.clip(np.r_[edges - 1, edges, edges + 1, edges + 2, np.arange(0, 1000, 100)], 0, 999))
        for i in probe:
            assert lp.accepts(thetas[i]) == accept[i]
            assert lp._eta(lp.y - lp.a * thetas[i])[0] == pytest.approx(exact._eta(exact.y - exact.a * thetas[i])[0],
                                                                        rel=1e-9, abs=1e-12)


def _fresh_eta_lp(W, r):
    """min z_0 s.t. W z >= r by linprog from scratch, as ConditionalTest._eta solves it."""
    res = optimize.linprog(np.r_[1.0, np.zeros(W.shape[1] - 1)], A_ub=-W, b_ub=-r, bounds=(None, None),
                           method="highs-ds")
    return res, (float(res.x[0]), -res.ineqlin.marginals) if res.status == 0 else None


def test_warm_started_bases_match_a_fresh_linprog_solve():
    """WarmBases (cached optimal bases, simplex pivots from the last one) gives the LP value
    and the multipliers a fresh HiGHS solve gives whenever it answers - on generic W and on
    the conditional test's own (with its +- row pairs and degenerate optima) - and answers
    most of the time."""
    rng = np.random.default_rng(11)
    answered = asked = 0
    for trial in range(24):
        if trial % 2:
            m, n = int(rng.integers(5, 16)), int(rng.integers(2, 5))
            W = np.column_stack([rng.uniform(0.2, 2.0, m), rng.normal(size=(m, n - 1))])
            r0, direction = rng.normal(size=m), rng.normal(size=m)
        else:
            num_pre, num_post = int(rng.integers(1, 4)), int(rng.integers(2, 5))
            beta, sigma = _random_design(num_pre, num_post, seed=trial)
            scale = 10 ** -rng.uniform(0.0, 1.5)  # small scales bring HiGHS' absolute tolerances into play
            beta, sigma = beta * scale, sigma * scale ** 2
            polys = H.relative_magnitude_polyhedra(num_pre, num_post, float(rng.choice([0.0, 0.5, 1.0, 2.0])))
            test = H.ConditionalTest.build(polys[int(rng.integers(len(polys)))], beta, sigma,
                                           H.target_vector("average", num_post), num_pre, num_post, 0.05)
            W, r0, direction = test.W, test.y, -test.a
        bases = H.WarmBases(W)
        res, first = _fresh_eta_lp(W, r0)
        if first is None:
            continue
        bases.learn(res.ineqlin.residual, first[1])
        for theta in np.linspace(-5.0, 5.0, 41) * max(1.0, float(np.max(np.abs(r0)))):
            r = r0 + theta * direction
            _, fresh = _fresh_eta_lp(W, r)
            value = bases.lookup(r, value_only=True)
            if value is not None and fresh is not None:
                assert value[0] == pytest.approx(fresh[0], rel=1e-9, abs=1e-12)
            got = bases.solve(r)
            asked += 1
            if got is None:
                continue
            answered += 1
            assert fresh is not None
            assert got[0] == pytest.approx(fresh[0], rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(got[1], fresh[1], rtol=0, atol=1e-9 * np.max(np.abs(fresh[1])))
            np.testing.assert_array_equal(got[1] > H.LAMBDA_TOL, fresh[1] > H.LAMBDA_TOL)
    assert answered > 0.8 * asked


def test_warm_started_bases_leave_near_ties_to_highs():
    """A vertex 4e-8 inside a row is 'optimal' to HiGHS (feasibility tolerance 1e-7), so
    it returns that vertex rather than the exact optimum, whose other rows hold by 4e-8:
    the cached exact basis must not answer there (a case found on a small-scale design)."""
    W = np.array([[0.034544, 0.0, 0.0, 0.0], [0.058754, 1.0, 0.0, 0.0], [0.062552, -1.0, 1.0, 0.0],
                  [0.037654, 0.0, -1.0, 1.0], [0.037462, 0.0, 0.0, 0.0], [0.057416, -1.0, 0.0, 0.0],
                  [0.05305, 1.0, -1.0, 0.0], [0.052881, 0.0, 1.0, -1.0]])
    z = np.array([-7.361099e-05, 1.281294e-01, -5.486722e-02, -2.175364e-02])
    r = W @ z - np.array([1.56e-6, 0.0, 0.0, 0.0, 1.69e-6, 0.0, 4.2e-8, 1.89e-6])
    bases = H.WarmBases(W)
    assert bases._add(np.array([1, 2, 3, 5]))
    _, fresh = _fresh_eta_lp(W, r)
    got = bases.solve(r)
    assert got is None or np.array_equal(got[1] > H.LAMBDA_TOL, fresh[1] > H.LAMBDA_TOL)


def test_coarse_search_finds_interval_and_narrow_seeded_interval():
    thetas = np.linspace(0, 1, 1000)
    calls = []

    def interval(theta):
        calls.append(theta)
        return 0.3137 <= theta <= 0.7021

    got = H.accepted_on_grid(interval, thetas)
    np.testing.assert_array_equal(got, (thetas >= 0.3137) & (thetas <= 0.7021))
    assert len(calls) < 120
    narrow = H.accepted_on_grid(lambda t: 0.5001 <= t <= 0.5031, thetas, seed=0.502)
    np.testing.assert_array_equal(narrow, (thetas >= 0.5001) & (thetas <= 0.5031))


def test_truncated_normal_quantile():
    for lo, hi in ((-np.inf, np.inf), (-1.0, 2.0), (0.5, np.inf), (-np.inf, -3.0), (9.0, 12.0), (-40.0, -38.0),
                   (25.0, np.inf)):
        for p in (0.05, 0.5, 0.95):
            expected = stats.truncnorm.ppf(p, lo, hi)
            assert H.truncated_normal_quantile(p, lo, hi) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_breakdown_to_dict_and_figure():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = honest_sensitivity(MPDTA_BETA, MPDTA_SIGMA, 2, 4, method="smoothness", grid=[0, 0.005, 0.01, 0.02],
                                 l_vec="average", theta_bounds=MPDTA_BOUNDS)
    for method in ("FLCI", "Conditional"):
        rob = res.robust(method)
        contains = (rob["lb"] <= 0) & (rob["ub"] >= 0)
        expected = float(rob["M"][contains.idxmax()]) if contains.any() else None
        assert res.breakdown_value(method) == expected
    assert res.breakdown_value() == res.breakdown_value("FLCI")
    assert res.breakdown_value("FLCI") == 0.0  # the linear-extrapolation CI already contains 0
    strong = MPDTA_BETA - np.r_[0, 0, 0.3, 0.3, 0.3, 0.3]  # a large effect: no M of the grid reaches 0
    tight = honest_sensitivity(strong, MPDTA_SIGMA, 2, 4, method="smoothness", grid=[0.0, 0.005], l_vec="average",
                               ci="FLCI")
    assert np.all(tight.rows["ub"] < 0) and tight.breakdown_value() is None
    d = json.loads(json.dumps(res.to_dict()))
    assert d["restriction"] == "smoothness" and d["parameter"] == "M" and len(d["rows"]) == 8
    assert d["original"]["lb"] == pytest.approx(res.original[0]) and d["l_vec"] == [0.25] * 4
    assert d["breakdown"]["FLCI"] == res.breakdown_value("FLCI")

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert honest_figure(res, ax=ax) is ax
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    assert len(bars) == 3  # original + FLCI + Conditional
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Orig.", "0", "0.005", "0.01", "0.02"]
    assert ax.get_xlabel() == "M"
    plt.close(fig)
    plt.close(honest_figure(tight).figure)


def test_bad_input_raises():
    b, s = MPDTA_BETA, MPDTA_SIGMA
    cases = [
        ({"betahat": b[:5]}, "num_pre \\+ num_post"),
        ({"sigma": s[:5, :5]}, "sigma must be 6 x 6"),
        ({"sigma": s + np.triu(np.ones((6, 6)), 1) * 1e-3}, "symmetric"),
        ({"sigma": -s}, "positive semi-definite"),
        ({"l_vec": [1, 0]}, "l_vec"),
        ({"l_vec": "median"}, "l_vec"),
        ({"method": "sd"}, "method must be one of"),
        ({"ci": "FLCI"}, "ci for relative_magnitude"),
        ({"grid": [-1.0]}, "non-negative"),
        ({"alpha": 1.5}, "alpha"),
        ({"theta_bounds": (1.0, -1.0)}, "theta_bounds"),
    ]
    for change, message in cases:
        kwargs = {"betahat": b, "sigma": s, "num_pre": 2, "num_post": 4}
        kwargs.update(change)
        with pytest.raises(ValueError, match=message):
            honest_sensitivity(**kwargs)


def test_default_grids_and_theta_bounds():
    """Defaults: Mbar in 0..2; M from 0 to the pre-period bound; automatic theta grids
    wide enough that the conditional CI does not touch an end (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rm = honest_sensitivity(RANDOM_BETA, RANDOM_SIGMA, 4, 3, grid=[0.5])
        sd = honest_sensitivity(RANDOM_BETA, RANDOM_SIGMA, 4, 3, method="smoothness", grid=[0.05], l_vec="average")
    assert np.all(np.isfinite(rm.rows[["lb", "ub"]])) and np.all(np.isfinite(sd.rows[["lb", "ub"]]))
    flci_only = honest_sensitivity(RANDOM_BETA, RANDOM_SIGMA, 4, 3, method="smoothness", ci="FLCI")
    second = np.diff(RANDOM_BETA[:4], 2)
    se = np.sqrt(np.diag(np.diff(np.eye(4), 2, axis=0) @ RANDOM_SIGMA[:4, :4] @ np.diff(np.eye(4), 2, axis=0).T))
    np.testing.assert_allclose(flci_only.robust()["M"],
                               np.linspace(0, np.max(np.abs(second) + stats.norm.ppf(0.95) * se), 10))
    assert H._default_grid("relative_magnitude", RANDOM_BETA, RANDOM_SIGMA, 4).tolist() == np.linspace(0, 2, 10).tolist()
