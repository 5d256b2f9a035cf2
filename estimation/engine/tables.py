"""Publication-style regression tables (several models side by side).

Layout (as in the studies' "Table 3")::

                          (1)         (2)
                          res         res
    DID                 0.123***    0.098**
                       (0.031)     (0.041)
    Controls               NO         YES
    City FE               YES         YES
    Year FE               YES         YES
    Observations        3,360       3,360
    R-squared           0.912       0.915
    Note: Standard errors clustered by city_code in parentheses. *** p<0.01, ** p<0.05, * p<0.1

:func:`regression_table` builds a :class:`RegressionTable` once; render it
with ``to_text()``, ``to_markdown()``, ``to_latex()`` or ``to_html()``.
Stars are derived from each model's own p-values (t reference with that
model's degrees of freedom).
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .model import INTERCEPT
from .result import FeolsResult
from .vcov import VcovSpec

STAT_LABELS = {
    "nobs": "Observations",
    "r2": "R-squared",
    "r2_within": "Within R-squared",
    "adj_r2": "Adj. R-squared",
    "adj_r2_within": "Adj. within R-squared",
    "n_clusters": "Clusters",
    "fstat": "F statistic",
}


@dataclass
class Cell:
    text: str = ""
    stars: str = ""


@dataclass
class Row:
    kind: str  # "header" | "coef" | "se" | "info" | "stat"
    label: str
    cells: list[Cell]


def _fmt(v: float, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    s = f"{v:.{digits}f}"
    if float(s) == 0.0 and s.startswith("-"):
        s = s[1:]
    return s


def stars_for(p: float, thresholds: Sequence[float] = (0.01, 0.05, 0.1)) -> str:
    """``***`` if p < thresholds[0], ``**`` if p < thresholds[1], ``*`` if p < thresholds[2]."""
    if p is None or math.isnan(p):
        return ""
    for n, th in zip((3, 2, 1), sorted(thresholds)):
        if p < th:
            return "*" * n
    return ""


def _se_note(results: Sequence[FeolsResult]) -> str:
    kinds = {(r.vcov, r.cluster) for r in results}
    if len(kinds) == 1:
        kind, cl = next(iter(kinds))
        cls = tuple(cl.split("+")) if cl else ()
        desc = VcovSpec(kind, cls[0] if cls else None, cls).description
        return f"{desc} in parentheses."
    return "Standard errors in parentheses; their type differs across columns."


@dataclass
class RegressionTable:
    rows: list[Row]
    n_models: int
    note: str
    n_header_rows: int = 1
    section_starts: list[int] = field(default_factory=list)  # row indices preceded by a rule

    # ---------------------------------------------------------------- text
    def to_text(self) -> str:
        grid = [[r.label] + [c.text + c.stars for c in r.cells] for r in self.rows]
        widths = [max(len(g[j]) for g in grid) for j in range(self.n_models + 1)]
        widths = [widths[0]] + [max(w, 8) for w in widths[1:]]
        total = sum(widths) + 2 * self.n_models
        out = ["=" * total]
        for i, g in enumerate(grid):
            if i == self.n_header_rows or i in self.section_starts:
                out.append("-" * total)
            cells = [g[0].ljust(widths[0])] + [
                _center_num(g[j], widths[j]) for j in range(1, self.n_models + 1)
            ]
            out.append("  ".join(cells).rstrip())
        out.append("=" * total)
        out.append(self.note)
        return "\n".join(out)

    __str__ = to_text

    # ------------------------------------------------------------ markdown
    def to_markdown(self) -> str:
        def md(s: str) -> str:
            return s.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")

        lines = []
        for i, r in enumerate(self.rows):
            cells = [md(r.label)] + [md(c.text + c.stars) for c in r.cells]
            lines.append("| " + " | ".join(cells) + " |")
            if i == 0:
                lines.append("|" + "|".join([":---"] + [":---:"] * self.n_models) + "|")
        return "\n".join(lines) + "\n\n" + md(self.note) + "\n"

    # --------------------------------------------------------------- latex
    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        def tex(s: str) -> str:
            rep = {
                "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$",
                "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "<": r"$<$", ">": r"$>$",
            }
            return "".join(rep.get(ch, ch) for ch in s)

        def cell(c: Cell) -> str:
            return tex(c.text) + (f"$^{{{c.stars}}}$" if c.stars else "")

        ncol = self.n_models + 1
        lines = []
        if caption or label:
            lines.append(r"\begin{table}[htbp]\centering")
            if caption:
                lines.append(rf"\caption{{{tex(caption)}}}")
            if label:
                lines.append(rf"\label{{{label}}}")
        lines.append(r"\begin{tabular}{l" + "c" * self.n_models + "}")
        lines.append(r"\toprule")
        for i, r in enumerate(self.rows):
            if i == self.n_header_rows or i in self.section_starts:
                lines.append(r"\midrule")
            lines.append(" & ".join([tex(r.label)] + [cell(c) for c in r.cells]) + r" \\")
        lines.append(r"\bottomrule")
        lines.append(
            rf"\multicolumn{{{ncol}}}{{l}}{{\footnotesize {tex(self.note)}}} \\"
        )
        lines.append(r"\end{tabular}")
        if caption or label:
            lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- html
    def to_html(self) -> str:
        def cell(c: Cell, tag: str) -> str:
            s = _html.escape(c.text) + (f"<sup>{c.stars}</sup>" if c.stars else "")
            return f"<{tag}>{s}</{tag}>"

        out = ['<table class="regression-table">', "<thead>"]
        for i, r in enumerate(self.rows):
            if i == self.n_header_rows:
                out += ["</thead>", "<tbody>"]
            tag = "th" if i < self.n_header_rows else "td"
            cls = f' class="{r.kind}"'
            out.append(
                f"<tr{cls}>" + cell(Cell(r.label), tag) + "".join(cell(c, tag) for c in r.cells) + "</tr>"
            )
        out += ["</tbody>", f'<tfoot><tr><td colspan="{self.n_models + 1}">'
                f"{_html.escape(self.note)}</td></tr></tfoot>", "</table>"]
        return "\n".join(out) + "\n"

    def render(self, fmt: str = "text") -> str:
        f = fmt.lower()
        if f in ("text", "txt", "plain"):
            return self.to_text()
        if f in ("markdown", "md"):
            return self.to_markdown()
        if f in ("latex", "tex"):
            return self.to_latex()
        if f == "html":
            return self.to_html()
        raise ValueError(f"unknown table format {fmt!r}")


def _center_num(s: str, width: int) -> str:
    return s.center(width)


def regression_table(
    results: FeolsResult | Sequence[FeolsResult],
    terms: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    model_names: Sequence[str] | None = None,
    depvar: bool = True,
    controls: bool | str | Sequence[str] = "auto",
    fe_labels: Mapping[str, str] | None = None,
    stats: Sequence[str] = ("nobs", "r2"),
    digits: int = 3,
    star_levels: Sequence[float] = (0.01, 0.05, 0.1),
    note: str | None = None,
) -> RegressionTable:
    """Lay out ``results`` side by side.

    Parameters
    ----------
    terms
        Coefficients to show, in order.  Default: every term of any model
        except ``Intercept``.
    labels
        Display names for terms (e.g. ``{"did": "DID"}``).
    depvar
        Add a row with each model's dependent variable under the column names.
    controls
        ``"auto"`` (default): a ``Controls`` row is shown when ``terms`` is
        given, reading ``YES`` if the model has regressors not listed in
        ``terms``.  ``True``/``False`` force it on/off (auto rule for values);
        a list of column names reads ``YES`` if the model has any of them.
    fe_labels
        Ordered mapping fixed-effect column -> row label (e.g.
        ``{"city_code": "City FE", "year": "Year FE"}``); default: every
        fixed effect used by any model, labelled ``"<name> FE"``.
    stats
        Bottom rows among ``nobs, r2, r2_within, adj_r2, adj_r2_within,
        n_clusters``.
    digits
        Decimals for coefficients, standard errors and R-squared.
    star_levels
        p-value thresholds for ``***``, ``**``, ``*``.
    note
        Replace the automatic note (stars legend and SE type).
    """
    if isinstance(results, FeolsResult):
        results = [results]
    results = list(results)
    if not results:
        raise ValueError("no results to tabulate")
    labels = dict(labels or {})
    n = len(results)
    names = list(model_names) if model_names is not None else [f"({i + 1})" for i in range(n)]
    if len(names) != n:
        raise ValueError("model_names must have one entry per result")

    explicit_terms = terms is not None
    if terms is None:
        seen: list[str] = []
        for r in results:
            for t in r.terms:
                if t != INTERCEPT and t not in seen:
                    seen.append(t)
        terms = seen
    terms = list(terms)

    rows: list[Row] = [Row("header", "", [Cell(s) for s in names])]
    if depvar:
        rows.append(Row("header", "", [Cell(r.depvar) for r in results]))
    n_header = len(rows)
    sections: list[int] = []

    for t in terms:
        coef_cells, se_cells = [], []
        for r in results:
            if t in r.coef.index:
                coef_cells.append(Cell(_fmt(r.coef[t], digits), stars_for(r.pvalue[t], star_levels)))
                se_cells.append(Cell(f"({_fmt(r.se[t], digits)})"))
            else:
                coef_cells.append(Cell())
                se_cells.append(Cell())
        rows.append(Row("coef", labels.get(t, t), coef_cells))
        rows.append(Row("se", "", se_cells))

    info_start = len(rows)
    show_controls = controls is True or (controls == "auto" and explicit_terms) or (
        not isinstance(controls, (bool, str)) and controls is not None
    )
    if show_controls:
        vals = []
        for r in results:
            if isinstance(controls, (bool, str)):
                has = any(x not in terms for x in r.regressors)
            else:
                has = any(x in r.regressors for x in controls)
            vals.append(Cell("YES" if has else "NO"))
        rows.append(Row("info", "Controls", vals))

    if fe_labels is None:
        fe_order: list[str] = []
        for r in results:
            for f in r.fixef:
                if f not in fe_order:
                    fe_order.append(f)
        fe_labels = {f: f"{f} FE" for f in fe_order}
    for f, lab in fe_labels.items():
        rows.append(Row("info", lab, [Cell("YES" if f in r.fixef else "NO") for r in results]))

    stat_start = len(rows)
    for s in stats:
        if s not in STAT_LABELS:
            raise ValueError(f"unknown statistic {s!r}; choose from {sorted(STAT_LABELS)}")
        cells = []
        for r in results:
            v = getattr(r, s)
            if s in ("nobs", "n_clusters"):
                cells.append(Cell("" if v is None else f"{int(v):,}"))
            else:
                cells.append(Cell(_fmt(float(v), digits)))
        rows.append(Row("stat", STAT_LABELS[s], cells))

    if info_start < len(rows) and info_start > n_header:
        sections.append(info_start)
    if stat_start != info_start and stat_start < len(rows):
        sections.append(stat_start)

    if note is None:
        lv = sorted(star_levels)
        note = (
            f"Note: {_se_note(results)} "
            f"*** p<{lv[0]:g}, ** p<{lv[1]:g}, * p<{lv[2]:g}."
        )
    return RegressionTable(rows, n, note, n_header, sections)


def simple_table(head: Sequence[str], body: Sequence[Sequence[str]], note: str, fmt: str) -> str:
    """A small table of preformatted cells (first column left-aligned, the rest right) with a
    note: Markdown, or HTML with the regression tables' class."""
    if fmt == "html":
        e = _html.escape
        cells = "".join(f"<th>{e(str(h))}</th>" for h in head)
        rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in body)
        return (f'<table class="regression-table"><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody>'
                f'<tfoot><tr><td colspan="{len(head)}">{e(note)}</td></tr></tfoot></table>\n')
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n\n" + note + "\n"
