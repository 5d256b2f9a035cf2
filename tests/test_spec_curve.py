"""The specification curve over the resilience index (estimation/studies/spec_curve.py) on the
published sample: the baseline is the warehouse's res, every other index equals an independent
numpy computation on the same indicator values."""
from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation.studies import resilience, spec_curve
from warehouse.paths import DBT_PROJECT_DIR
from warehouse.sample.index import INDICATOR_NAMES, fit_entropy


@pytest.fixture(scope="module")
def warehouse(published_sample):
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def curve(warehouse):
    return spec_curve.run_spec_curve(warehouse)


def wide_inputs(con, interpolation: str, winsorising: str) -> pd.DataFrame:
    """The indicator values of one variant, one row per city-year, columns in INDICATOR_NAMES order."""
    long = con.execute(spec_curve.inputs_sql(interpolation, winsorising)).df()
    return long.pivot(index=["city_code", "year"], columns="indicator", values="value")[list(INDICATOR_NAMES)]


def scores_of(curve, *spec) -> pd.Series:
    s = curve.scores
    mask = np.logical_and.reduce([s[c] == v for c, v in zip(spec_curve.CHOICES, spec)])
    return s[mask].set_index(["city_code", "year"])["score"].astype(float)


def numpy_equal_and_pca(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max over each column's values; equal weights; PC1 of np.corrcoef on the complete rows."""
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    Xn = (X - lo) / (hi - lo)
    complete = ~np.isnan(Xn).any(axis=1)
    _, vectors = np.linalg.eigh(np.corrcoef(Xn[complete], rowvar=False))
    w = vectors[:, -1] ** 2
    return Xn @ np.full(X.shape[1], 1.0 / X.shape[1]), Xn @ w  # NaN rows stay NaN


def test_the_baseline_is_the_warehouse_res(warehouse, curve):
    _, results = resilience.run_table3(warehouse)
    own = results[3]
    b = curve.baseline
    assert tuple(b[list(spec_curve.CHOICES)]) == spec_curve.BASELINE
    assert b["coef"] == pytest.approx(own.coef["did"], abs=1e-10)
    assert b["se"] == pytest.approx(own.se["did"], abs=1e-10)
    assert b["nobs"] == own.nobs
    res = warehouse.execute("select city_code, year, res from main.analysis_panel").df().set_index(["city_code", "year"])
    ours = scores_of(curve, *spec_curve.BASELINE)
    assert np.allclose(ours.reindex(res.index), res["res"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("interpolation", spec_curve.INTERPOLATION)
@pytest.mark.parametrize("winsorising", spec_curve.WINSORISING)
def test_equal_and_pca_scores_equal_numpy(warehouse, curve, interpolation, winsorising):
    wide = wide_inputs(warehouse, interpolation, winsorising)
    for scope in spec_curve.SCOPES:
        groups = [wide] if scope == "panel" else [g for _, g in wide.groupby(level="year")]
        for g in groups:
            equal, pca = numpy_equal_and_pca(g.to_numpy(float))
            for weighting, expected in (("equal", equal), ("pca", pca)):
                got = scores_of(curve, weighting, scope, interpolation, winsorising).reindex(g.index).to_numpy()
                assert np.array_equal(np.isnan(got), np.isnan(expected))
                assert np.allclose(got, expected, rtol=0, atol=1e-12, equal_nan=True), (weighting, scope)


@pytest.mark.parametrize("winsorising", spec_curve.WINSORISING)
def test_year_scope_entropy_equals_the_numpy_reference(warehouse, curve, winsorising):
    wide = wide_inputs(warehouse, "on", winsorising)
    got = scores_of(curve, "entropy", "year", "on", winsorising)
    weights = curve.weights.query(f"weighting == 'entropy' and scope == 'year' and interpolation == 'on' "
                                  f"and winsorising == '{winsorising}'")
    for year, g in wide.groupby(level="year"):
        model = fit_entropy(g.to_numpy(float))
        expected, _ = model.score(g.to_numpy(float))
        assert np.allclose(got.reindex(g.index), expected, rtol=0, atol=1e-12)
        w = weights[weights.weight_year == year].set_index("indicator")["weight"]
        assert np.allclose(w[list(INDICATOR_NAMES)], model.weights, rtol=0, atol=1e-12)


@pytest.mark.parametrize("interpolation", spec_curve.INTERPOLATION)
def test_winsorising_clips_at_the_numpy_quantiles(warehouse, interpolation):
    raw = wide_inputs(warehouse, interpolation, "off")
    clipped = wide_inputs(warehouse, interpolation, "on")
    for name in INDICATOR_NAMES:
        x = raw[name].to_numpy(float)
        lo, hi = np.quantile(x[~np.isnan(x)], [0.01, 0.99])  # method 'linear', numpy's default
        got = clipped[name].to_numpy(float)
        assert np.array_equal(np.isnan(got), np.isnan(x))  # a missing value stays missing
        assert np.allclose(got, np.clip(x, lo, hi), rtol=1e-15, atol=0, equal_nan=True), name
        assert np.nanmin(got) == pytest.approx(lo, rel=1e-15) and np.nanmax(got) == pytest.approx(hi, rel=1e-15)
        assert (x < lo).sum() > 0 and (x > hi).sum() > 0


def test_interpolation_off_removes_exactly_the_values_built_from_imputed_cells(warehouse, curve):
    """Checked against another record of the imputation: int_city_year_variables.imputed_variables."""
    imputed = warehouse.execute("select city_code, year, imputed_variables from intermediate.int_city_year_variables "
                                "where imputed_variables is not null").fetchall()
    cells = {(c, y): set(v.split(",")) for c, y, v in imputed}
    on, off = wide_inputs(warehouse, "on", "off"), wide_inputs(warehouse, "off", "off")
    expected = pd.DataFrame(False, index=on.index, columns=on.columns)
    for (city, year) in on.index:
        for name in INDICATOR_NAMES:
            used = {(v, year) for v in spec_curve.INDICATOR_CELLS[name]}
            used |= {(v, year - 1) for v in spec_curve.LAST_YEAR_CELLS.get(name, ())}
            expected.loc[(city, year), name] = any(v in cells.get((city, y), ()) for v, y in used)
    removed = off.isna() & on.notna()
    assert expected.to_numpy().any()
    assert (removed == expected).all().all()
    for weighting in spec_curve.WEIGHTINGS:  # such a city-year gets no index, the others all get one
        scores = scores_of(curve, weighting, "year", "off", "on").reindex(on.index)
        assert (scores.isna() == expected.any(axis=1)).all()
    kept = ~expected.to_numpy()
    assert np.array_equal(off.to_numpy(float)[kept], on.to_numpy(float)[kept], equal_nan=True)


def test_the_indicator_cells_follow_the_dbt_model(warehouse):
    spec = {r[0] for r in warehouse.execute("select indicator from reference.index_spec "
                                            "where index_name = 'resilience' and available").fetchall()}
    assert set(spec_curve.INDICATOR_CELLS) == spec
    variables = {r[0] for r in warehouse.execute(f"select distinct variable from {spec_curve.VALUES_LONG}").fetchall()}
    sql = (DBT_PROJECT_DIR / "models" / "intermediate" / "panel" / "int_resilience_indicators.sql").read_text()
    formulas = {name: expr for expr, name in re.findall(r"^\s+(.+?) as (\w+),?$", sql, flags=re.MULTILINE)}
    for indicator, cells in spec_curve.INDICATOR_CELLS.items():
        assert set(cells) <= variables
        if indicator in formulas:  # patents_granted is the variable itself
            named = set(re.findall(r"\b[a-z_]+\b", formulas[indicator])) & variables
            assert named == set(cells), indicator


def test_24_distinct_specifications_and_the_summary_counts(curve, tmp_path):
    t = curve.table
    assert len(t) == 24 and not curve.dropped
    assert len(t.drop_duplicates(list(spec_curve.CHOICES))) == 24 and t["coef"].nunique() == 24
    assert t["is_baseline"].sum() == 1
    w = curve.weights.groupby([*spec_curve.CHOICES, "weight_year"], dropna=False)["weight"]
    assert np.allclose(w.sum(), 1.0, atol=1e-12) and (curve.weights["weight"] >= 0).all()
    assert curve.scores["score"].dropna().between(0, 1).all()
    line = curve.summary_line()
    hits, n, pct = map(int, re.match(r"(\d+) of (\d+) specifications \((\d+)%\)", line).groups())
    assert (hits, n) == (int(((t.coef > 0) & (t.pvalue < 0.05)).sum()), 24) and pct == round(100 * hits / n)
    assert f"from {t.coef.min():.4g} to {t.coef.max():.4g}" in line and f"gives {curve.baseline.coef:.4g}" in line
    path = curve.plot(tmp_path / "curve.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
