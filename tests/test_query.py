"""`cityres query` and the notebook API on the published sample: exact output in every format,
values never cut, refusals that help (unknown table, syntax error), and the same sandbox for
`warehouse.connect()` / `warehouse.read()`."""
from __future__ import annotations

import json
import math

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.slow
SQL = "select city_name, city_name_en, year, res from resilience_index where year = 2023 order by res desc limit 7"


def run(home, *args):
    return CliRunner().invoke(app, ["query", *args, "--home", str(home.root)])


@pytest.fixture(scope="module")
def expected(published_sample):
    with duckdb.connect(str(published_sample.warehouse_db), read_only=True) as con:
        return con.execute(SQL).df()


def test_json_and_csv_are_exact(published_sample, expected):
    out = run(published_sample, SQL, "--format", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["res"] for r in rows] == expected["res"].tolist()  # bit for bit, not approximately
    assert [r["city_name"] for r in rows] == expected["city_name"].tolist()
    out = run(published_sample, SQL, "--format", "csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(pd.io.common.StringIO(out.stdout))
    assert frame["res"].tolist() == expected["res"].tolist()
    assert "(synthetic sample data)" in out.stderr  # said, on stderr, so stdout stays machine-readable


def test_parquet_needs_a_file_and_is_exact(published_sample, expected, tmp_path):
    out = run(published_sample, SQL, "--format", "parquet")
    assert out.exit_code == 2 and "--out" in out.stderr
    path = tmp_path / "top.parquet"
    out = run(published_sample, SQL, "--format", "parquet", "--out", str(path))
    assert out.exit_code == 0, out.output
    got = pd.read_parquet(path)
    assert got["res"].tolist() == expected["res"].tolist() and got["year"].tolist() == expected["year"].tolist()


def test_table_output_never_cuts_a_value(published_sample, expected):
    out = run(published_sample, SQL)  # not a terminal: plain aligned text
    assert out.exit_code == 0, out.output
    for row in expected.itertuples():
        assert row.city_name in out.stdout and row.city_name_en in out.stdout
        assert repr(row.res) in out.stdout  # the full double, not 4 decimals
    assert "…" not in out.stdout
    wide = run(published_sample, "select string_agg(city_name_en, ', ') as every_city from resilience_index "
                                 "where year = 2023")
    assert wide.exit_code == 0 and "Zhangjiajie" in wide.stdout and "…" not in wide.stdout


def test_refusals_help(published_sample):
    out = run(published_sample, "select * from resilience_indx")
    assert out.exit_code == 2
    assert "resilience_indx" in out.stderr and "Published relations:" in out.stderr
    assert "resilience_index" in out.stderr.split("Published relations:")[1]
    out = run(published_sample, "select city_name from resilience_index wher year = 2023")
    assert out.exit_code == 2 and "syntax error" in out.stderr.lower() and "LINE 1" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_the_notebook_api_reads_in_the_same_sandbox(published_sample, expected):
    import warehouse

    frame = warehouse.read("resilience_index", where="year = 2023", home=published_sample.root)
    top = frame.sort_values("res", ascending=False).head(7)
    assert top["res"].tolist() == expected["res"].tolist()
    with pytest.raises(KeyError, match="published"):
        warehouse.read("no_such_table", home=published_sample.root)
    con = warehouse.connect(published_sample.root)
    try:
        assert con.execute("select count(*) from analysis_panel").fetchall()[0][0] == 3444
        with pytest.raises(duckdb.Error):
            con.execute("select * from read_text('/etc/passwd')").fetchall()
        with pytest.raises(duckdb.Error):
            con.execute("set memory_limit = '1TB'")
    finally:
        con.close()
    assert not math.isnan(frame["res"].mean())


def test_the_sql_shell_answers_and_refuses_like_query(published_sample, tmp_path):
    import os
    import subprocess
    import sys

    home = tmp_path / "home"  # the shell keeps its history in the home: use a copy
    from wap_fixtures import copy_home

    copy_home(published_sample, home)
    script = ("select count(*) as n\nfrom analysis_panel;\n"
              f"copy (select 1) to '{home}/warehouse.duckdb';\n\\d\n\\q\n")
    out = subprocess.run([sys.executable, "-m", "flows.cli", "sql", "--home", str(home)], input=script,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CITYRES_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert "3444" in out.stdout
    assert "error: COPY statements are not allowed" in out.stdout
    assert "resilience_index" in out.stdout  # \d lists the relations
    assert (home / ".sql_history").exists()
