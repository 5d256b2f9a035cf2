"""Split-sample heterogeneity tables, with the test of the difference the studies never run.

A split is a time-invariant attribute of the city with two values (key vs ordinary city,
resource-based or not, east or west of the Hu line, high or low S&T spending). For each, the
study's two columns (the same model on each group), and beneath them:

* the difference of the two coefficients tested in the fully interacted pooled model
  (Chow-type; CRV1 by city, clusters nested in the groups), and
* Fisher's permutation p-value: the group labels permuted across cities 1,000 times (group sizes
  kept), both split-sample coefficients re-estimated for every draw in one SQL batch
  (:func:`estimation.engine.groups.permutation_test`).

Used by the NQP study's Table 6 (:func:`estimation.studies.nqp.run_table6`) and the NQP ->
resilience study's Table 6 (:func:`estimation.studies.nqp_resilience.run_table6`).
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from estimation.engine.groups import GroupDifference, PermutationResult, interaction_test, permutation_test, split_sample
from estimation.engine.result import FeolsResult
from estimation.engine.tables import Cell, Row, regression_table

from .common import FE_LABELS, TERM_LABELS, UNIT

PERMUTATIONS = 1000


@dataclass(frozen=True)
class SplitSpec:
    key: str  # e.g. key_city
    column: str  # a time-invariant city attribute with two values
    levels: tuple  # (first, second) as the columns show them
    labels: tuple[str, str]


@dataclass
class Split:
    spec: SplitSpec
    results: tuple[FeolsResult, FeolsResult]  # in the order of spec.levels
    difference: GroupDifference  # second minus first
    permutation: PermutationResult


@dataclass
class SplitTable:
    table_id: str  # e.g. nqp.table6
    term: str
    formula: str
    splits: list[Split]
    pooled: FeolsResult  # the same model on the whole sample: the line in the figure

    def model_ids(self) -> list[tuple[str, Split, int]]:
        return [(f"{self.table_id}.{s.spec.key}.{_slug(s.spec.labels[i])}", s, i)
                for s in self.splits for i in (0, 1)]

    def render(self, fmt: str = "markdown", labels: dict | None = None) -> str:
        labels = {**TERM_LABELS, **(labels or {})}
        results = [s.results[i] for s in self.splits for i in (0, 1)]
        names = [f"({n}) {s.spec.labels[i]}" for n, (s, i) in enumerate(((s, i) for s in self.splits for i in (0, 1)),
                                                                      start=1)]
        tab = regression_table(results, terms=[self.term], labels=labels, controls=True, fe_labels=FE_LABELS,
                               stats=("nobs", "r2"), model_names=names)
        diff_cells, p_cells, perm_cells = [], [], []
        for s in self.splits:
            d, p = s.difference, s.permutation
            diff_cells += [Cell(""), Cell(f"{d.difference:.3f}", _stars(d.p))]
            p_cells += [Cell(""), Cell(f"{d.p:.3f}")]
            perm_cells += [Cell(""), Cell(f"{p.p_value_plus1:.3f}")]
        at = next(i for i, r in enumerate(tab.rows) if r.kind == "info")
        tab.rows[at:at] = [Row("info", "Difference (second - first)", diff_cells),
                           Row("info", "p, pooled interaction (CRV1)", p_cells),
                           Row("info", f"p, permutation ({PERMUTATIONS:,} draws)", perm_cells)]
        tab.note += (" Difference: the coefficient in the second column of a pair minus the first, tested in the "
                     "fully interacted pooled model (every regressor and fixed effect by group, CRV1 by city); "
                     f"permutation: the groups' labels permuted across cities {PERMUTATIONS:,} times (group sizes "
                     "kept), p = (1 + #|difference| at least as large) / (1 + draws).")
        return tab.render(fmt)

    def effects(self) -> pd.DataFrame:
        rows = []
        for s in self.splits:
            for i in (0, 1):
                r = s.results[i]
                low, high = (float(v) for v in r.conf_int.loc[self.term])
                rows.append({"group": s.spec.labels[i], "coef": float(r.coef[self.term]), "ci_low": low,
                             "ci_high": high, "split": s.spec.key})
        return pd.DataFrame(rows)

    def plot(self, path, title: str):
        from estimation.engine.figures import group_coefficient_figure

        return group_coefficient_figure(self.effects(), float(self.pooled.coef[self.term]), path, title)

    def tests(self) -> list[tuple[str, list[tuple]]]:
        """(model id, rows for main.model_tests) per split."""
        return [(f"{self.table_id}.{s.spec.key}", [
            ("difference", s.difference.difference, None, None, s.difference.p),
            ("difference_se", s.difference.se_difference, None, None, None),
            ("permutation_p", s.permutation.p_value_plus1, s.permutation.n_valid, None, None),
        ]) for s in self.splits]


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _stars(p: float) -> str:
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""


def run_split_table(con: duckdb.DuckDBPyConnection, relation: str, table_id: str, formula: str, term: str,
                    specs: list[SplitSpec], seed: int) -> SplitTable:
    from estimation.engine.model import feols

    vcov = {"CRV1": UNIT}
    splits = []
    for k, spec in enumerate(specs):
        fits = split_sample(con, relation, formula, spec.column, vcov=vcov)
        by_level = {str(level): r for level, r in fits.items()}
        results = tuple(by_level[str(level)] for level in spec.levels)
        # the two groups' fits once: the interaction and permutation tests would refit the same models
        given = dict(zip(spec.levels, results))
        diff = interaction_test(con, relation, formula, spec.column, term, vcov=vcov, levels=spec.levels,
                                fits=given)
        perm = permutation_test(con, relation, formula, spec.column, term, UNIT, draws=PERMUTATIONS,
                                seed=seed + k, levels=spec.levels, fits=given)
        splits.append(Split(spec, results, diff, perm))
    return SplitTable(table_id, term, formula, splits, feols(con, relation, formula, vcov=vcov))


def persist_split_table(con: duckdb.DuckDBPyConnection, run_id: str, vintage: str, synthetic: bool,
                        table: SplitTable) -> int:
    """Each group's model into main.estimates (<table>.<split>.<group>), each split's difference
    and permutation p into main.model_tests (<table>.<split>)."""
    from estimation.engine.persist import persist_results, persist_tests

    n = persist_results(con, run_id, vintage, synthetic,
                        [(model_id, table.formula, s.results[i]) for model_id, s, i in table.model_ids()])
    for model_id, rows in table.tests():
        persist_tests(con, run_id, vintage, model_id, rows)
    return n
