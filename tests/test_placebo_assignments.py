"""Randomisation inference on given assignments (``run_placebo(assignments=...)`` and
``cityres estimate placebo --assignments FILE``): staggered draws equal a loop of pyfixest
refits on the same assignments, a generated permutation set saved and fed back reproduces
its draws, and bad assignment sets or files are refused with the row, column and value."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from oracles import pf_fit
from panels import did_panel
from typer.testing import CliRunner

from estimation.engine.placebo import AssignmentError, run_placebo
from flows.cli import app

FML = "y ~ did + x1 + x2 | unit + year"
# pyfixest demeans to 1e-12 (oracles.pf_fit); the batch and the refits are the same
# estimator, so coefficients and standard errors agree far below these tolerances
COEF_ATOL = 1e-8
SE_RTOL = 1e-8


def refit_loop(df: pd.DataFrame, table: pd.DataFrame, vcov) -> pd.DataFrame:
    """One pyfixest regression per draw, D_it = 1[year >= adoption] (adoption 0 = untreated)."""
    rows = []
    for d, grp in table.groupby("draw"):
        adopt = df["unit"].map(grp.set_index("unit")["adoption"]).astype(float)
        pdid = ((adopt > 0) & (df["year"] >= adopt)).astype(float)
        m = pf_fit(FML.replace("did", "pdid"), df.assign(pdid=pdid), vcov)
        rows.append((d, m.coef()["pdid"], m.se()["pdid"], m.pvalue()["pdid"]))
    return pd.DataFrame(rows, columns=["draw", "coef", "se", "p"])


def assert_draws_equal_refits(draws: pd.DataFrame, loop: pd.DataFrame) -> None:
    got = draws.set_index("draw").loc[loop["draw"]]
    np.testing.assert_allclose(got["coef"].to_numpy(), loop["coef"].to_numpy(), rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(got["se"].to_numpy(), loop["se"].to_numpy(), rtol=SE_RTOL)
    np.testing.assert_allclose(got["p"].to_numpy(), loop["p"].to_numpy(), rtol=1e-6, atol=1e-12)


def staggered_table(units, labels, seed: int) -> pd.DataFrame:
    """Every unit in every draw; dates mix cohorts, the first period (always treated), a date
    after the panel (untreated in effect) and 0 (untreated); rows shuffled."""
    rng = np.random.default_rng(seed)
    dates = np.array([0, 0, 0, 0, 2014, 2015, 2017, 2019, 2012, 2030])
    frame = pd.concat([pd.DataFrame({"draw": lab, "unit": units, "adoption": rng.choice(dates, size=len(units))})
                       for lab in labels], ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def n_staggered(table: pd.DataFrame) -> int:
    in_panel = table[(table["adoption"] > 0) & (table["adoption"] <= 2020)]  # 2030: never treated in 2012-2020
    return int((in_panel.groupby("draw")["adoption"].nunique() > 1).sum())


@pytest.mark.parametrize(
    "drop,vcov,method",
    [
        (0.0, {"CRV1": "unit"}, "within_dummies"),
        (0.1, "iid", "within_dummies"),
        (0.0, {"CRV1": "stratum"}, "within_dummies"),
    ],
)
def test_given_staggered_draws_equal_pyfixest_refits(drop, vcov, method):
    df = did_panel(40, 9, 21, n_controls=2, cohorts=(2015, 2017), drop=drop, treated_share=0.3, n_strata=6)
    con = duckdb.connect()
    con.register("panel", df)
    labels = [3, 7, 11, 12, 40, 41, 100, 205, 206, 999]  # any integers, in any order of rows
    table = staggered_table(np.sort(df["unit"].unique()), labels, seed=4)
    res = run_placebo(con, "panel", FML, "did", "unit", "year", draws=3, seed=1, vcov=vcov, assignments=table)
    assert res.draws["draw"].tolist() == labels and res.n_draws == len(labels)
    assert (res.assignment_source, res.permute, res.seed, res.method) == ("given", "given", None, method)
    assert res.n_staggered_draws == n_staggered(table) > 0
    assert_draws_equal_refits(res.draws, refit_loop(df, table, vcov))
    # the given draws come back as the result's assignments (pseudo-treated units only)
    kept = res.assignments.merge(table, on=["draw", "unit"], suffixes=("", "_given"))
    assert len(kept) == len(res.assignments) and (kept["adoption"] == kept["adoption_given"]).all()


def test_given_permutations_of_staggered_dates_take_the_closed_form_path():
    df = did_panel(36, 8, 5, n_controls=2, cohorts=(2014, 2016, 2018), treated_share=0.4)
    con = duckdb.connect()
    con.register("panel", df)
    real = df.groupby("unit")["adoption_year"].first().fillna(0).astype(int)
    rng = np.random.default_rng(8)
    table = pd.concat([pd.DataFrame({"draw": d, "unit": real.index, "adoption": rng.permutation(real.to_numpy())})
                       for d in range(1, 9)], ignore_index=True)
    # a relation of the connection, not a DataFrame
    con.register("given", table)
    res = run_placebo(con, "panel", FML, "did", "unit", "year", assignments="SELECT * FROM given")
    assert res.method == "balanced_invariant" and res.n_staggered_draws == 8
    assert_draws_equal_refits(res.draws, refit_loop(df, table, {"CRV1": "unit"}))


def test_generated_set_saved_and_fed_back_reproduces_the_draws(tmp_path):
    df = did_panel(40, 9, 6, n_controls=2, cohorts=(2015, 2017), treated_share=0.3, drop=0.05)
    con = duckdb.connect()
    con.register("panel", df)
    gen = run_placebo(con, "panel", FML, "did", "unit", "year", draws=25, seed=12, permute="units")
    table = gen.assignment_table()
    assert len(table) == 25 * df["unit"].nunique() and set(table["draw"]) == set(range(1, 26))
    table.to_csv(tmp_path / "a.csv", index=False)
    table.to_parquet(tmp_path / "a.parquet", index=False)
    for saved in (pd.read_csv(tmp_path / "a.csv"), pd.read_parquet(tmp_path / "a.parquet")):
        back = run_placebo(con, "panel", FML, "did", "unit", "year", assignments=saved)
        assert back.method == gen.method and back.n_staggered_draws == gen.n_staggered_draws
        pd.testing.assert_frame_equal(back.assignments, gen.assignments)  # the same draws, exactly
        # the same assignment matrix through the same SQL; 1e-12 only guards against a
        # different summation order of DuckDB's parallel aggregates
        pd.testing.assert_frame_equal(back.draws, gen.draws, check_exact=False, rtol=1e-12, atol=1e-14)
        assert back.ri_p_value == gen.ri_p_value


def test_bad_assignment_sets_name_the_draw_and_unit():
    df = did_panel(20, 6, 3, n_controls=1, cohorts=(2015,))
    con = duckdb.connect()
    con.register("panel", df)
    table = staggered_table(np.arange(20), [1, 2, 3], seed=1).sort_values(["draw", "unit"]).reset_index(drop=True)

    def refuse(frame, pattern):
        with pytest.raises(AssignmentError, match=pattern):
            run_placebo(con, "panel", "y ~ did + x1 | unit + year", "did", "unit", "year", assignments=frame)

    refuse(table[~((table["draw"] == 2) & (table["unit"] == 7))],
           "draw 2 does not list unit 7 of the estimation sample")
    refuse(pd.concat([table, table.iloc[[45]]]).sort_values(["draw", "unit"]),
           r"index 45, column 'unit', value 5: draw 3 lists unit 5 a second time \(first at index 45\)")
    refuse(table.assign(unit=table["unit"].where(table.index != 30, 77)),
           "index 30, column 'unit', value 77: draw 2 lists unit 77, which is not in the estimation sample")
    refuse(table.assign(adoption=table["adoption"].astype(object).where(table.index != 4, "soon")),
           "index 4, column 'adoption', value 'soon': not a number; expected the unit's adoption period")
    refuse(table.assign(draw=table["draw"].astype(float).where(table.index != 9, 2.5)),
           "index 9, column 'draw', value 2.5: not an integer")
    refuse(table.drop(columns="adoption"), "no column 'adoption'")
    with pytest.raises(ValueError, match="not in the estimation sample"):  # an AssignmentError is a ValueError
        run_placebo(con, "panel", "y ~ did + x1 | unit + year", "did", "unit", "year",
                    assignments=table.assign(unit=table["unit"] + 100))


# ------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory):
    df = did_panel(36, 8, 9, n_controls=2, cohorts=(2014, 2016), treated_share=0.35)
    path = tmp_path_factory.mktemp("ri") / "panel.csv"
    df.drop(columns=["adoption_year"]).to_csv(path, index=False)
    return path, df


def invoke(*args):
    return CliRunner().invoke(app, ["estimate", *map(str, args)])


def placebo_args(path):
    return ["placebo", "--data", path, "--formula", FML, "--treatment", "did", "--unit", "unit", "--time", "year",
            "--format", "json"]


def test_cli_assignments_file_equals_pyfixest_refits(panel_file, tmp_path):
    path, df = panel_file
    table = staggered_table(np.arange(36), [1, 2, 3, 4, 5, 6], seed=2)
    table.to_csv(tmp_path / "given.csv", index=False)
    out = invoke(*placebo_args(path), "--assignments", tmp_path / "given.csv", "--draws", 999)
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert payload["placebo"]["draws"] == 6 and payload["placebo"]["assignment_source"] == "given"
    assert payload["placebo"]["staggered_draws"] == n_staggered(table)
    assert_draws_equal_refits(pd.DataFrame(payload["draws"]), refit_loop(df, table, {"CRV1": "unit"}))


def test_cli_saved_assignments_fed_back_reproduce_the_draws(panel_file, tmp_path):
    path, _ = panel_file
    for name in ("saved.csv", "saved.parquet"):
        first = invoke(*placebo_args(path), "--draws", 30, "--seed", 3, "--save-assignments", tmp_path / name)
        assert first.exit_code == 0, first.output
        again = invoke(*placebo_args(path), "--assignments", tmp_path / name, "--seed", 99)
        assert again.exit_code == 0, again.output
        a, b = json.loads(first.stdout), json.loads(again.stdout)
        assert [r["draw"] for r in a["draws"]] == [r["draw"] for r in b["draws"]] == list(range(1, 31))
        # the same assignment matrix through the same SQL (1e-12: summation order only)
        np.testing.assert_allclose([r["coef"] for r in b["draws"]], [r["coef"] for r in a["draws"]], rtol=1e-12)
        np.testing.assert_allclose([r["se"] for r in b["draws"]], [r["se"] for r in a["draws"]], rtol=1e-12)
        assert a["ri_p_value"] == b["ri_p_value"]


def one_line_error(out) -> str:
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1, out.output
    return lines[0]


def test_cli_bad_assignment_files_say_file_row_column_value_and_expectation(panel_file, tmp_path):
    path, _ = panel_file
    good = staggered_table(np.arange(36), [1, 2], seed=5).sort_values(["draw", "unit"]).reset_index(drop=True)

    def run_with(frame, name="bad.csv"):
        f = tmp_path / name
        if name.endswith(".csv"):
            frame.to_csv(f, index=False)
        else:
            frame.to_parquet(f, index=False)
        return one_line_error(invoke(*placebo_args(path), "--assignments", f)), f

    # CSV rows are file lines (the header is line 1): frame row i is line i + 2
    msg, f = run_with(good.assign(adoption=good["adoption"].astype(object).where(good.index != 5, "2016a")))
    assert f"--assignments {f}, line 7, column 'adoption', value '2016a': not a number; expected the unit's " \
           "adoption period in that draw (a number; 0 or empty = untreated)" in msg
    msg, f = run_with(pd.concat([good.iloc[:40], good.iloc[[38]], good.iloc[40:]]))
    assert f"{f}, line 42, column 'unit', value 2: draw 2 lists unit 2 a second time (first at line 40); " \
           "expected every unit of the estimation sample exactly once per draw" in msg
    msg, f = run_with(good.assign(unit=good["unit"].where(good.index != 3, 500)))
    assert f"{f}, line 5, column 'unit', value 500: draw 1 lists unit 500, which is not in the estimation " \
           "sample" in msg
    msg, f = run_with(good.drop(index=50))
    assert f"{f}: draw 2 does not list unit 14 of the estimation sample; expected every unit" in msg
    msg, f = run_with(good.assign(draw=good["draw"].astype(float).where(good.index != 0, 1.5)))
    assert f"{f}, line 2, column 'draw', value 1.5: not an integer; expected an integer draw label" in msg
    # Parquet rows are counted from 1
    msg, f = run_with(good.assign(unit=good["unit"].where(good.index != 3, 500)), "bad.parquet")
    assert f"{f}, row 4, column 'unit', value 500: draw 1 lists unit 500" in msg
    msg, f = run_with(good.rename(columns={"adoption": "year_adopted"}))
    assert f"--assignments {f}: no column 'adoption'; expected the columns draw, unit and adoption (found: draw, " \
           "unit, year_adopted)" in msg
    msg = one_line_error(invoke(*placebo_args(path), "--assignments", tmp_path / "nosuch.csv"))
    assert "nosuch.csv: no such file" in msg
    msg = one_line_error(invoke(*placebo_args(path), "--assignments", tmp_path / "a.xlsx"))
    assert "a.xlsx: expected a .csv or .parquet file with columns draw, unit, adoption" in msg
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    msg = one_line_error(invoke(*placebo_args(path), "--assignments", tmp_path / "broken.parquet"))
    assert "broken.parquet: cannot be read as parquet" in msg
