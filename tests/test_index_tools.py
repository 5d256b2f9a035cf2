"""`cityres index entropy`: the warehouse's entropy macros on any table, against numpy (a public
panel shipped by statsmodels) and against the warehouse's own published weights (the sample)."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from warehouse.index_tools import entropy_index, parse_indicators

SPEC = "invest+,value+,capital-"


def numpy_entropy(frame: pd.DataFrame, spec: dict[str, str], shift: float = 0.0) -> tuple[dict, np.ndarray]:
    """Min-max by direction, p = x/Σx, e = -Σ p ln p / ln n, w = (1 - e)/Σ(1 - e); score = Σ w x."""
    normalised = {}
    for name, direction in spec.items():
        x = frame[name].to_numpy(float)
        lo, hi = x.min(), x.max()
        normalised[name] = ((x - lo) if direction == "+" else (hi - x)) / (hi - lo) + shift
    d = {}
    for name, x in normalised.items():
        p = x / x.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        d[name] = 1 + terms.sum() / np.log(len(x))
    total = sum(d.values())
    weights = {k: v / total for k, v in d.items()}
    return weights, sum(weights[k] * normalised[k] for k in spec)


@pytest.fixture(scope="module")
def grunfeld():
    from statsmodels.datasets import grunfeld

    df = grunfeld.load_pandas().data
    df["year"] = df["year"].astype(int)
    con = duckdb.connect()
    con.register("grunfeld", df)
    return con, df.sort_values(["firm", "year"]).reset_index(drop=True)


@pytest.mark.parametrize("shift", [0.0, 1e-4])
def test_panel_weights_and_scores_equal_numpy(grunfeld, shift):
    con, df = grunfeld
    weights, scores = entropy_index(con, "grunfeld", "firm", "year", parse_indicators(SPEC), shift=shift)
    expected_w, expected_score = numpy_entropy(df, {"invest": "+", "value": "+", "capital": "-"}, shift)
    for row in weights.itertuples():
        assert row.weight == pytest.approx(expected_w[row.indicator], abs=1e-12)
    scores = scores.sort_values(["firm", "year"]).reset_index(drop=True)
    assert np.allclose(scores["score"], expected_score, rtol=0, atol=1e-12)


def test_year_scope_gives_one_set_of_weights_per_period(grunfeld):
    con, df = grunfeld
    weights, _ = entropy_index(con, "grunfeld", "firm", "year", parse_indicators(SPEC), scope="year")
    for year, g in df.groupby("year"):
        expected, _ = numpy_entropy(g, {"invest": "+", "value": "+", "capital": "-"})
        got = weights[weights.weight_year == year].set_index("indicator")["weight"]
        assert got.to_dict() == pytest.approx(expected, abs=1e-12)


def test_the_cli_prints_weights_and_dimension_scores(grunfeld, tmp_path):
    _, df = grunfeld
    path = tmp_path / "grunfeld.csv"
    df.to_csv(path, index=False)
    out = CliRunner().invoke(app, ["index", "entropy", "--data", str(path), "--id", "firm", "--time", "year",
                                   "--indicators", SPEC, "--dimensions", "size:value,capital;flow:invest"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    expected_w, expected_score = numpy_entropy(df, {"invest": "+", "value": "+", "capital": "-"})
    assert {w["indicator"]: w["weight"] for w in payload["weights"]} == pytest.approx(expected_w, abs=1e-12)
    first = payload["scores"][0]
    assert first["size"] + first["flow"] == pytest.approx(first["score"], abs=1e-12)
    bad = CliRunner().invoke(app, ["index", "entropy", "--data", str(path), "--id", "firm", "--time", "year",
                                   "--indicators", "invest,value+"])
    assert bad.exit_code == 2 and "needs a direction" in bad.output


def test_on_the_sample_it_reproduces_the_warehouse_weights(published_sample):
    """The published resilience index's panel weights, recomputed from its inputs by the tool."""
    con = duckdb.connect(str(published_sample.warehouse_db), read_only=True)
    spec = con.execute("select indicator, direction from intermediate.int_index_inputs "
                       "where index_name = 'resilience' group by all order by 1").fetchall()
    wide = con.execute("pivot (select city_code, year, indicator, value from intermediate.int_index_inputs "
                       "where index_name = 'resilience') on indicator using first(value) group by city_code, year").df()
    local = duckdb.connect()
    local.register("wide", wide)
    text = ",".join(f"{name}{'+' if d == 'positive' else '-'}" for name, d in spec)
    weights, _ = entropy_index(local, "wide", "city_code", "year", parse_indicators(text))
    published = dict(con.execute("select indicator, weight from main.index_weights where index_name = 'resilience' "
                                 "and scope = 'panel'").fetchall())
    assert weights.set_index("indicator")["weight"].to_dict() == pytest.approx(published, abs=1e-12)


@pytest.mark.parametrize("benchmark", ["mean_growth", "weighted", "mean_level"])
def test_martin_sunley_equals_numpy(grunfeld, benchmark):
    from warehouse.index_tools import martin_sunley

    con, df = grunfeld
    ours = martin_sunley(con, "grunfeld", "firm", "year", "invest", "capital", benchmark)
    ours = ours.sort_values(["firm", "year"]).reset_index(drop=True)
    d = df.sort_values(["firm", "year"]).copy()
    prev = d.groupby("firm")["invest"].shift(1)
    d["g"] = (d["invest"] - prev) / prev
    if benchmark == "mean_growth":
        bench = d.groupby("year")["g"].mean()
    elif benchmark == "weighted":
        ok = d.dropna(subset=["g"])
        bench = ok.groupby("year").apply(lambda x: np.average(x["g"], weights=x["capital"]))
    else:
        levels = d.groupby("year")["invest"].mean()
        bench = levels.pct_change()
    d["r"] = (d["g"] - d["year"].map(bench)) / d["year"].map(bench).abs()
    d = d.reset_index(drop=True)
    mask = d["r"].notna()
    assert (ours["sensitivity"].notna() == mask).all()
    assert np.allclose(ours.loc[mask, "sensitivity"], d.loc[mask, "r"], rtol=1e-12, atol=1e-12)


def test_the_martin_sunley_cli(grunfeld, tmp_path):
    from warehouse.index_tools import martin_sunley

    con, df = grunfeld
    path = tmp_path / "grunfeld.csv"
    df.to_csv(path, index=False)
    args = ["index", "martin-sunley", "--data", str(path), "--unit", "firm", "--time", "year", "--value", "invest"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["rows"]
    direct = martin_sunley(con, "grunfeld", "firm", "year", "invest")
    assert [r["sensitivity"] for r in rows][1] == pytest.approx(direct["sensitivity"].iloc[1], rel=1e-12)
    bad = CliRunner().invoke(app, [*args, "--benchmark", "weighted"])
    assert bad.exit_code == 2 and "needs --weight" in bad.output
