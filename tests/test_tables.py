"""Publication tables: stars follow p-values, SEs in parentheses, FE rows, N."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from estimation import FeolsResult, feols, regression_table
from estimation.engine.tables import stars_for


def fake_result(coef, se, p, *, fixef=(), regressors=None, nobs=1000, r2=0.5, vcov="CRV1",
                cluster="city_code", depvar="res") -> FeolsResult:
    idx = pd.Index(list(coef), name="term")
    c = pd.Series(coef, index=idx, dtype=float)
    s = pd.Series(se, index=idx, dtype=float)
    return FeolsResult(
        formula="fake", depvar=depvar, regressors=tuple(regressors or coef), fixef=tuple(fixef),
        coef=c, se=s, tstat=c / s, pvalue=pd.Series(p, index=idx, dtype=float),
        conf_int=pd.DataFrame({"ci_low": c - 2 * s, "ci_high": c + 2 * s}, index=idx),
        vcov_matrix=pd.DataFrame(np.diag(s.to_numpy() ** 2), index=idx, columns=idx),
        vcov=vcov, cluster=cluster, n_clusters=50, nobs=nobs, df_t=49, df_k=5, ssc_factor=1.0,
        r2=r2, r2_within=0.1, adj_r2=r2, adj_r2_within=0.1, rmse=1.0, ssr=1.0, dropped=[],
    )


# p-values straddling every threshold (strict "<")
P_CASES = [(0.0001, "***"), (0.00999, "***"), (0.01, "**"), (0.049, "**"), (0.05, "*"),
           (0.0999, "*"), (0.1, ""), (0.6, "")]


@pytest.mark.parametrize("p,expected", P_CASES)
def test_stars_for_thresholds(p, expected):
    assert stars_for(p) == expected


@pytest.fixture
def models():
    """Four columns in the style of Table 3, with p-values hitting each star level."""
    fe2 = ("city_code", "year")
    return [
        fake_result({"did": 0.1234}, {"did": 0.0312}, {"did": 0.004}, fixef=fe2, nobs=3360, r2=0.91234),
        fake_result({"did": -0.0981, "x1": 0.5}, {"did": 0.0411, "x1": 0.1}, {"did": 0.03, "x1": 0.2},
                    fixef=fe2, nobs=3360, r2=0.9156),
        fake_result({"did": 0.0756, "x1": 0.5}, {"did": 0.0402, "x1": 0.1}, {"did": 0.07, "x1": 0.2},
                    fixef=("city_code",), nobs=12345, r2=0.5),
        fake_result({"Intercept": 1.0, "did": 0.0004, "x1": 0.2}, {"Intercept": 0.1, "did": 0.0201, "x1": 0.1},
                    {"Intercept": 0.0, "did": 0.98, "x1": 0.04}, nobs=3400, r2=0.1),
    ]


def make(models, **kw):
    return regression_table(
        models, terms=["did"], labels={"did": "DID"},
        fe_labels={"city_code": "City FE", "year": "Year FE"}, **kw,
    )


def md_rows(text: str) -> dict[str, list[list[str]]]:
    """Markdown table -> {label: [cells, ...]} (labels may repeat: '' for SE rows)."""
    out: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|:"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        out.setdefault(cells[0], []).append(cells[1:])
    return out


def test_markdown_layout(models):
    md = make(models).to_markdown()
    rows = md_rows(md)
    assert rows[""][0] == ["(1)", "(2)", "(3)", "(4)"]
    assert rows[""][1] == ["res"] * 4
    # coefficient row: 3 decimals + escaped stars that follow the p-values
    assert rows["DID"][0] == ["0.123\\*\\*\\*", "-0.098\\*\\*", "0.076\\*", "0.000"]
    # SE row sits right under it, in parentheses
    assert rows[""][2] == ["(0.031)", "(0.041)", "(0.040)", "(0.020)"]
    assert rows["Controls"][0] == ["NO", "YES", "YES", "YES"]
    assert rows["City FE"][0] == ["YES", "YES", "YES", "NO"]
    assert rows["Year FE"][0] == ["YES", "YES", "NO", "NO"]
    assert rows["Observations"][0] == ["3,360", "3,360", "12,345", "3,400"]
    assert rows["R-squared"][0] == ["0.912", "0.916", "0.500", "0.100"]
    assert "x1" not in rows and "Intercept" not in rows
    assert "clustered by city\\_code" in md and "\\*\\*\\* p<0.01" in md
    # order: DID row, then its SE row, then the info rows
    lines = [l for l in md.splitlines() if l.startswith("|")]
    i = next(k for k, l in enumerate(lines) if l.startswith("| DID"))
    assert "(0.031)" in lines[i + 1] and lines[i + 2].startswith("| Controls")


def test_latex_layout(models):
    tex = make(models, digits=2).to_latex(caption="Baseline results", label="tab:base")
    assert tex.count(r"\begin{tabular}{lcccc}") == 1 and r"\bottomrule" in tex
    did = next(l for l in tex.splitlines() if l.startswith("DID &"))
    cells = [c.strip() for c in did.rstrip("\\ ").split("&")]
    assert cells[1:] == ["0.12$^{***}$", "-0.10$^{**}$", "0.08$^{*}$", "0.00"]
    lines = tex.splitlines()
    se = lines[lines.index(did) + 1]
    assert [c.strip() for c in se.rstrip("\\ ").split("&")][1:] == ["(0.03)", "(0.04)", "(0.04)", "(0.02)"]
    assert r"City FE & YES & YES & YES & NO \\" in tex
    assert r"Year FE & YES & YES & NO & NO \\" in tex
    assert r"Observations & 3,360 & 3,360 & 12,345 & 3,400 \\" in tex
    assert r"R-squared & 0.91 & 0.92 & 0.50 & 0.10 \\" in tex
    assert r"city\_code" in tex and r"$<$0.01" in tex  # escaped for LaTeX
    assert r"\caption{Baseline results}" in tex and r"\label{tab:base}" in tex


def test_text_and_html_render(models):
    txt = make(models).to_text()
    did_line = next(l for l in txt.splitlines() if l.startswith("DID"))
    assert did_line.split()[1:] == ["0.123***", "-0.098**", "0.076*", "0.000"]
    assert "Note: Standard errors clustered by city_code" in txt
    html = make(models).to_html()
    assert "<td>0.123<sup>***</sup></td>" in html and "<td>(0.031)</td>" in html
    assert make(models).render("md") == make(models).to_markdown()


def test_default_terms_controls_and_note():
    a = fake_result({"did": 1.0, "x1": 2.0}, {"did": 0.1, "x1": 5.0}, {"did": 0.001, "x1": 0.7},
                    vcov="hetero", cluster=None)
    b = fake_result({"Intercept": 3.0, "x1": 2.0}, {"Intercept": 1.0, "x1": 5.0},
                    {"Intercept": 0.01, "x1": 0.7}, vcov="iid", cluster=None)
    rows = md_rows(regression_table([a, b], depvar=False).to_markdown())
    assert rows["did"][0] == ["1.000\\*\\*\\*", ""] and rows["x1"][0] == ["2.000", "2.000"]
    assert "Controls" not in rows and "Intercept" not in rows  # no terms given -> no Controls row
    note = regression_table([a]).to_text().splitlines()[-1]
    assert "Heteroskedasticity-robust" in note
    assert "differs across columns" in regression_table([a, b]).to_text()
    with_list = md_rows(regression_table([a, b], terms=["did"], controls=["x1"]).to_markdown())
    assert with_list["Controls"][0] == ["YES", "YES"]


def test_table_from_estimates_uses_their_pvalues():
    rng = np.random.default_rng(0)
    n_u, n_t = 40, 10
    df = pd.DataFrame({"city_code": np.repeat(np.arange(n_u), n_t), "year": np.tile(np.arange(n_t), n_u)})
    df["did"] = ((df.city_code < 20) & (df.year >= 5)).astype(float)
    df["x1"] = rng.normal(size=len(df))
    df["res"] = 0.3 * df.did + df.x1 + rng.normal(size=len(df))
    con = duckdb.connect()
    con.register("panel", df)
    res = [
        feols(con, "panel", "res ~ did | city_code + year", vcov={"CRV1": "city_code"}),
        feols(con, "panel", "res ~ did + x1 | city_code + year", vcov={"CRV1": "city_code"}),
        feols(con, "panel", "res ~ did + x1", vcov={"CRV1": "city_code"}),
    ]
    rows = md_rows(regression_table(res, terms=["did"], labels={"did": "DID"},
                                    fe_labels={"city_code": "City FE", "year": "Year FE"}).to_markdown())
    for j, r in enumerate(res):
        star = stars_for(r.pvalue["did"]).replace("*", "\\*")
        assert rows["DID"][0][j] == f"{r.coef['did']:.3f}{star}"
        assert rows[""][2][j] == f"({r.se['did']:.3f})"
        assert rows["Observations"][0][j] == f"{r.nobs:,}"
        assert rows["R-squared"][0][j] == f"{r.r2:.3f}"
    assert rows["Controls"][0] == ["NO", "YES", "YES"]
    assert rows["City FE"][0] == ["YES", "YES", "NO"]
