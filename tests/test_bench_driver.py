"""The benchmark driver's bookkeeping (no timing is measured or asserted here): section selection,
rendering from stored results, the agreement check's SE conventions and the growth exponent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.benchmarks import common, run


def test_only_and_skip_select_sections_in_the_fixed_order():
    assert run.selected("growth,peers", None) == ["peers", "growth"]
    assert "twfe_large" not in run.selected(None, "twfe_large")
    assert run.selected(None, None) == run.SECTIONS


def test_an_unknown_section_is_refused_in_words():
    with pytest.raises(SystemExit, match="unknown section.*nope.*the sections are"):
        run.selected("nope", None)


def test_exponent_of_an_exact_power_law():
    points = [[n, 3e-7 * n**1.25] for n in (1e5, 1e6, 1e7)]
    assert common.exponent(points) == pytest.approx(1.25, rel=1e-12)
    assert common.exponent([[10, 1.0]]) is None


def test_agreement_divides_out_cityres_small_sample_factor_for_raw_sandwiches():
    ours = {"nobs": 100, "coef": [1.0, -2.0], "se": [0.2, 0.4], "ssc_factor": 1.21}
    raw = {"nobs": 100, "coef": [1.0, -2.0], "se": [0.2 / 1.1, 0.4 / 1.1], "se_scale": "raw"}
    assert common.agreement(raw, ours)["agrees"]
    same = {**raw, "se_scale": "cityres"}  # the raw SEs read as cityres's convention: 10% off
    ag = common.agreement(same, ours)
    assert not ag["agrees"] and "SEs differ" in ag["reason"]


def test_agreement_reports_coefficients_only_and_failures():
    ours = {"nobs": 100, "coef": [1.0], "se": [0.2], "ssc_factor": 1.0}
    assert common.agreement({"nobs": 100, "coef": [1.0 + 1e-9], "se": None}, ours)["se_diff"] is None
    assert common.agreement({"error": "ValueError: Demeaning failed"}, ours)["reason"].startswith("ValueError")
    assert "observations" in common.agreement({"nobs": 99, "coef": [1.0], "se": [0.2]}, ours)["reason"]


def test_render_uses_stored_results_and_notes_missing_sections(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    growth = {"date": "2026-01-01T00:00:00", "command": "python -m tests.benchmarks.run --only growth",
              "machine": "x86_64", "versions": {"python": "3.11"}, "commit": "abc", "figure": "docs/g.png",
              "firm_scale_date": None,
              "series": {"twfe": {"unit": "rows", "exponents": {"ours": 1.0, "pyfixest": 1.1},
                                  "points": [{"size": 1000, "ours": {"s": 1.0, "runs_s": [1.0, 1.1, 0.9]},
                                              "pyfixest": {"error": "differs"}}]}}}
    (tmp_path / "growth.json").write_text(json.dumps(growth), encoding="utf-8")
    real_load = run.load
    monkeypatch.setattr(run, "load", lambda name: None if name == "refresh" else real_load(name))
    text = run.render(tmp_path / "B.md")
    assert "Not measured yet: `python -m tests.benchmarks.run --only peers`" in text
    assert "`tests/benchmarks/refresh.py` is not there yet" in text
    assert "1.00 s (1.00, 1.10, 0.90)" in text and "failed or differs: differs" in text
    assert "versions: python 3.11" in text
    assert text.index("## 5. Peers") < text.index("## 8. Growth")


def test_dense_design_size_of_statsmodels():
    from tests.benchmarks.peers import dense_design_bytes

    assert dense_design_bytes(1_000_000) == 1_000_000 * (100_000 + 16) * 8
    assert np.isclose(dense_design_bytes(20_000) / 2**30, 0.30, atol=0.01)
