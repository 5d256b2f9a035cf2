"""The report's own figures (matplotlib, Agg): the index by year, cities by location, treated vs
control means around adoption, and the top and bottom cities — with Chinese city names.

Chinese names need a CJK font. matplotlib is pointed at one by file path (CITYRES_CJK_FONT, or
the first of CJK_FONT_CANDIDATES that exists, e.g. Debian's fonts-noto-cjk); without one the
figures label cities with their English names and the report says why.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from flows.report.facts import IndexData

CJK_FONT_ENV = "CITYRES_CJK_FONT"
CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
MISSING_FONT_NOTE = ("No CJK font was found (install the Debian package fonts-noto-cjk, or point "
                     f"{CJK_FONT_ENV} at a .ttc/.otf/.ttf file): the figures label cities with their "
                     "English names.")
DPI = 110
SYNTHETIC_MARK = "SYNTHETIC SAMPLE DATA"
COLOURS = {"treated": "#b22222", "control": "#1f4e79", "neutral": "#5b8db8"}


@dataclass(frozen=True)
class Figure:
    name: str  # key in the report context
    file: str  # PNG beside report.md
    alt: str
    caption: str
    data_uri: str  # the PNG inlined for the HTML


@dataclass(frozen=True)
class CjkFont:
    path: str
    family: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@lru_cache(maxsize=None)
def cjk_font(override: str | None = None) -> CjkFont | None:
    """The CJK font registered with matplotlib by file path; None when no candidate exists."""
    from matplotlib import font_manager

    paths = [override] if override else list(CJK_FONT_CANDIDATES)
    for path in paths:
        if not path or not Path(path).is_file():
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):
            continue
        names = [f.name for f in font_manager.fontManager.ttflist if f.fname == str(Path(path))]
        if not names:
            continue
        # A collection (.ttc) registers one family per face: prefer Simplified Chinese.
        family = next((n for n in names if n.endswith(" SC") and "Mono" not in n), names[0])
        return CjkFont(str(path), family)
    return None


def find_cjk_font() -> CjkFont | None:
    return cjk_font(os.environ.get(CJK_FONT_ENV) or None)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure_record(name: str, path: Path, alt: str, caption: str) -> Figure:
    return Figure(name, Path(path).name, alt, caption, data_uri(path))


class _Style:
    """rcParams for one figure: Latin text in DejaVu Sans, CJK glyphs from the CJK font."""

    def __init__(self, font: CjkFont | None):
        self.font = font

    def __enter__(self):
        import matplotlib

        families = ["DejaVu Sans"] + ([self.font.family] if self.font else [])
        self._ctx = matplotlib.rc_context({"font.family": families, "font.size": 9,
                                           "axes.spines.top": False, "axes.spines.right": False})
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _save(fig, path: Path, synthetic: bool) -> Path:
    if synthetic:
        fig.text(0.995, 0.005, SYNTHETIC_MARK, ha="right", va="bottom", fontsize=7, color="#b22222", alpha=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _label(row, font: CjkFont | None) -> str:
    name = row.city_name if font else None
    return str(name or row.city_name_en or row.city_code)


def index_by_year(data: IndexData, path: Path, synthetic: bool, font: CjkFont | None) -> Path:
    """A box per year: median, quartiles, whiskers at 1.5 IQR, outlying cities as dots."""
    plt = _pyplot()
    with _Style(font):
        years = sorted(int(y) for y in data.by_year["year"].unique())
        groups = [data.by_year.loc[data.by_year["year"] == y, "res"].to_numpy() for y in years]
        fig, ax = plt.subplots(figsize=(8, 3.8))
        ax.boxplot(groups, tick_labels=[str(y) for y in years], widths=0.6, patch_artist=True,
                   boxprops={"facecolor": "#dbe7f3", "edgecolor": COLOURS["control"]},
                   medianprops={"color": COLOURS["treated"]},
                   flierprops={"marker": ".", "markersize": 3, "markerfacecolor": "0.5", "markeredgecolor": "none"})
        ax.plot(range(1, len(years) + 1), [g.mean() for g in groups], "D", color=COLOURS["control"], ms=3,
                label="mean")
        n = int(np.median([len(g) for g in groups]))
        ax.set_title(f"Resilience index by year ({n} cities a year)")
        ax.set_xlabel("year")
        ax.set_ylabel("index (res)")
        ax.legend(frameon=False, loc="upper left")
        return _save(fig, path, synthetic)


def _spread_out(frame, n: int, min_degrees: float = 1.5) -> list:
    """The highest-ranked rows, skipping any within `min_degrees` of one already chosen."""
    chosen = []
    for row in frame.sort_values("res", ascending=False).itertuples():
        if all(np.hypot(row.lon - c.lon, row.lat - c.lat) >= min_degrees for c in chosen):
            chosen.append(row)
        if len(chosen) == n:
            break
    return chosen


def index_map(data: IndexData, path: Path, synthetic: bool, font: CjkFont | None, label_top: int = 6) -> Path:
    """Cities at their longitude/latitude, coloured by the latest year's index (log scale: the
    index is right-skewed); the highest-ranked cities of each area named."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    frame = data.located
    low, high = float(frame["res"].min()), float(frame["res"].max())
    norm = LogNorm(low, high) if low > 0 else Normalize(low, high)
    with _Style(font):
        fig, ax = plt.subplots(figsize=(7.5, 5.8))
        points = ax.scatter(frame["lon"], frame["lat"], c=frame["res"], cmap="viridis", norm=norm, s=22,
                            edgecolors="white", linewidths=0.3)
        bar = fig.colorbar(points, ax=ax, shrink=0.75, pad=0.02)
        bar.set_label(f"index (res), {data.latest_year}" + (", log scale" if isinstance(norm, LogNorm) else ""))
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        bar.ax.yaxis.set_major_formatter(plain)
        bar.ax.yaxis.set_minor_formatter(plain)
        for row in _spread_out(frame, label_top):
            ax.annotate(_label(row, font), (row.lon, row.lat), xytext=(5, 3), textcoords="offset points",
                        fontsize=8, color="0.1",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
        ax.set_aspect(1 / np.cos(np.deg2rad(frame["lat"].mean())))
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
        ax.set_title(f"Cities by location, coloured by the {data.latest_year} index ({len(frame)} cities)")
        ax.grid(color="0.92", lw=0.6)
        return _save(fig, path, synthetic)


def treated_vs_control(data: IndexData, path: Path, synthetic: bool, font: CjkFont | None) -> Path:
    """Mean index by year of the pilot cities and of the others, adoption year(s) marked."""
    plt = _pyplot()
    frame = data.treated_control
    with _Style(font):
        fig, ax = plt.subplots(figsize=(8, 3.8))
        for treated, label, colour in ((True, "pilot cities (treated)", COLOURS["treated"]),
                                       (False, "other cities (control)", COLOURS["control"])):
            part = frame[frame["treated"] == treated]
            if part.empty:
                continue
            n = int(part["cities"].max())
            ax.plot(part["year"], part["mean_res"], "o-", color=colour, ms=4, lw=1.5, label=f"{label}, n = {n}")
        for i, row in enumerate(data.adoption.itertuples() if data.adoption is not None else ()):
            ax.axvline(row.adoption_year - 0.5, color="0.35", ls="--", lw=1,
                       label="adoption" if i == 0 else None)
            ax.annotate(f"adoption {row.adoption_year}\n({row.cities} cities)", (row.adoption_year - 0.5, 1),
                        xycoords=("data", "axes fraction"), xytext=(4, -4), textcoords="offset points",
                        va="top", fontsize=8, color="0.3")
        ax.set_xticks(sorted(frame["year"].unique()))
        ax.set_title("Mean index by year: pilot cities vs the others")
        ax.set_xlabel("year")
        ax.set_ylabel("mean index (res)")
        ax.legend(frameon=False, loc="lower right")
        return _save(fig, path, synthetic)


def top_and_bottom(data: IndexData, path: Path, synthetic: bool, font: CjkFont | None, n: int = 10) -> Path:
    """Horizontal bars: the n highest and the n lowest index values of the latest year."""
    plt = _pyplot()
    ranked = data.ranked.sort_values("res", ascending=False)
    top, bottom = ranked.head(n), ranked.tail(n)
    with _Style(font):
        fig, axes = plt.subplots(1, 2, figsize=(9, 0.32 * n + 1.4))
        for ax, part, title, colour in ((axes[0], top, f"top {len(top)}", COLOURS["control"]),
                                        (axes[1], bottom, f"bottom {len(bottom)}", COLOURS["neutral"])):
            labels = [_label(r, font) for r in part.itertuples()]
            ax.barh(range(len(part)), part["res"], color=colour)
            ax.set_yticks(range(len(part)), labels)
            ax.invert_yaxis()
            for i, value in enumerate(part["res"]):
                ax.annotate(f"{value:.3f}", (value, i), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7)
            ax.set_title(f"{title}, {data.latest_year}")
            ax.set_xlabel("index (res)")
            ax.margins(x=0.18)
        fig.tight_layout()
        return _save(fig, path, synthetic)


def index_figures(data: IndexData, folder: Path, synthetic: bool) -> tuple[list[Figure], list[str]]:
    """Draw the report's own figures into `folder`; return them and notes on what was left out."""
    font = find_cjk_font()
    notes = list(data.notes) + ([] if font else [MISSING_FONT_NOTE])
    figures: list[Figure] = []
    if data.ranked.empty:
        return figures, notes + ["the index is empty: no index figure"]
    first, last = data.years
    latest = data.latest_year
    figures.append(figure_record(
        "top_bottom", top_and_bottom(data, folder / "index_top_bottom.png", synthetic, font),
        f"Top and bottom cities by the {latest} index",
        f"The ten highest and ten lowest index values of {latest} (main.resilience_index)."))
    if data.located is not None and len(data.located):
        missing = len(data.ranked) - len(data.located)
        figures.append(figure_record(
            "map", index_map(data, folder / "index_map.png", synthetic, font),
            f"Cities by longitude and latitude, coloured by the {latest} index",
            f"Each city at its longitude/latitude ({data.coordinates}), coloured by its {latest} index "
            "(log scale); the highest-ranked city of each area is named." + (f" {missing} cities without coordinates are not drawn." if missing else "")))
    figures.append(figure_record(
        "by_year", index_by_year(data, folder / "index_by_year.png", synthetic, font),
        f"Distribution of the index by year, {first}–{last}",
        f"Box per year ({first}–{last}): median, quartiles, whiskers at 1.5 IQR, mean as a diamond."))
    if data.treated_control is not None and not data.treated_control.empty:
        figures.append(figure_record(
            "treated_control", treated_vs_control(data, folder / "index_treated_control.png", synthetic, font),
            "Mean index by year, pilot cities vs the others",
            "Mean index of the pilot (treated) cities and of the other cities by year (main.analysis_panel); "
            "the dashed line marks adoption."))
    return figures, notes
