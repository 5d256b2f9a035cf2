"""A tiny parser for fixest-style formulas: ``y ~ x1 + x2 | fe1 + fe2``.

Only plain column names are supported (no interactions, transformations or
``i()`` terms).  ``y ~ 1`` (intercept only, no fixed effects) is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Formula:
    y: str
    x: tuple[str, ...]
    fe: tuple[str, ...]

    def __str__(self) -> str:
        rhs = " + ".join(self.x) if self.x else "1"
        out = f"{self.y} ~ {rhs}"
        if self.fe:
            out += " | " + " + ".join(self.fe)
        return out


def _terms(side: str, what: str, fml: str) -> tuple[str, ...]:
    side = side.strip()
    if not side:
        raise ValueError(f"empty {what} in formula {fml!r}")
    out = []
    for raw in side.split("+"):
        term = raw.strip()
        if not _NAME.match(term):
            raise ValueError(
                f"unsupported {what} term {term!r} in formula {fml!r}: only plain "
                "column names joined by '+' are supported"
            )
        if term in out:
            raise ValueError(f"duplicated {what} term {term!r} in formula {fml!r}")
        out.append(term)
    return tuple(out)


def parse_formula(fml: str) -> Formula:
    """Parse ``"y ~ x1 + x2 | fe1 + fe2"`` into a :class:`Formula`.

    >>> parse_formula("res ~ did + x1 | city_code + year")
    Formula(y='res', x=('did', 'x1'), fe=('city_code', 'year'))
    """
    if not isinstance(fml, str):
        raise TypeError("formula must be a string")
    if fml.count("~") != 1:
        raise ValueError(f"formula must contain exactly one '~': {fml!r}")
    lhs, rhs = fml.split("~")
    parts = rhs.split("|")
    if len(parts) > 2:
        raise ValueError(
            f"formula has more than one '|' (IV parts are not supported): {fml!r}"
        )
    ys = _terms(lhs, "dependent variable", fml)
    if len(ys) != 1:
        raise ValueError(f"only one dependent variable is supported: {fml!r}")
    (y,) = ys
    x_side = parts[0].strip()
    x: tuple[str, ...] = () if x_side == "1" else _terms(x_side, "regressor", fml)
    fe: tuple[str, ...] = ()
    if len(parts) == 2:
        fe_side = parts[1].strip()
        fe = () if fe_side == "0" else _terms(fe_side, "fixed effect", fml)
    if not x and fe:
        raise ValueError(f"a fixed-effects model needs at least one regressor: {fml!r}")
    return Formula(y=y, x=x, fe=fe)
