"""A parser for fixest-style formulas: ``y ~ x1 + i(event_time, ref=-1) | fe1 + fe2``.

Right-hand-side terms are plain column names or factor expansions
``i(var)``, ``i(var, ref=r)``, ``i(var, ref=c(r1, r2))`` and ``i(var, by, ref=r)``
(each level of ``var`` except the references becomes a 0/1 dummy, multiplied by
the numeric column ``by`` when given; names follow pyfixest: ``var::level`` and
``var::level:by``).  The levels themselves are read from the data at estimation
time (:mod:`.terms`).  ``y ~ 1`` (intercept only, no fixed effects) is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ICALL = re.compile(r"^i\((?P<args>.*)\)$", re.S)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class IFactor:
    """``i(var, by, ref=...)``: dummies for the levels of ``var`` except ``ref``."""

    var: str
    by: str | None = None
    ref: tuple = ()

    def __str__(self) -> str:
        args = [self.var] + ([self.by] if self.by else [])
        if len(self.ref) == 1:
            args.append(f"ref={self.ref[0]!r}")
        elif self.ref:
            args.append("ref=c(" + ", ".join(repr(r) for r in self.ref) + ")")
        return "i(" + ", ".join(args) + ")"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.var,) + ((self.by,) if self.by else ())


@dataclass(frozen=True)
class Formula:
    y: str
    x: tuple[str, ...]  # the plain-column regressors
    fe: tuple[str, ...]
    rhs: tuple = ()  # every regressor term in formula order (str | IFactor); () = x

    def __post_init__(self) -> None:
        if not self.rhs:
            object.__setattr__(self, "rhs", tuple(self.x))

    @property
    def factors(self) -> tuple[IFactor, ...]:
        return tuple(t for t in self.rhs if isinstance(t, IFactor))

    def __str__(self) -> str:
        rhs = " + ".join(str(t) for t in self.rhs) if self.rhs else "1"
        out = f"{self.y} ~ {rhs}"
        if self.fe:
            out += " | " + " + ".join(self.fe)
        return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text!r}")
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    out.append("".join(cur))
    return out


def _literal(text: str, fml: str):
    """A reference level: an integer, a float or a quoted string."""
    t = text.strip()
    if _NUMBER.match(t):
        return int(t) if re.fullmatch(r"[+-]?\d+", t) else float(t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    raise ValueError(f"reference level {t!r} in {fml!r} must be a number or a quoted string")


def _parse_i(args: str, fml: str) -> IFactor:
    parts = [p.strip() for p in _split_top(args, ",")]
    positional, ref = [], ()
    for p in parts:
        if re.match(r"^ref\s*=", p):
            val = p.split("=", 1)[1].strip()
            m = re.fullmatch(r"(?:c\((.*)\)|\[(.*)\])", val, re.S)
            if m:
                inner = m.group(1) if m.group(1) is not None else m.group(2)
                ref = tuple(_literal(v, fml) for v in inner.split(",") if v.strip())
            else:
                ref = (_literal(val, fml),)
        elif "=" in p:
            raise ValueError(f"unsupported argument {p!r} of i() in {fml!r}")
        else:
            positional.append(p)
    if not 1 <= len(positional) <= 2 or not all(_NAME.match(p) for p in positional):
        raise ValueError(f"i() takes one factor column and an optional numeric column: {fml!r}")
    return IFactor(positional[0], positional[1] if len(positional) == 2 else None, ref)


def _terms(side: str, what: str, fml: str, allow_i: bool = False) -> tuple:
    side = side.strip()
    if not side:
        raise ValueError(f"empty {what} in formula {fml!r}")
    out: list = []
    for raw in _split_top(side, "+"):
        term = raw.strip()
        m = _ICALL.match(term) if allow_i else None
        if m:
            item = _parse_i(m.group("args"), fml)
        elif _NAME.match(term):
            item = term
        else:
            raise ValueError(
                f"unsupported {what} term {term!r} in formula {fml!r}: only column names "
                "joined by '+'" + (" and i() factor terms" if allow_i else "") + " are supported"
            )
        if item in out:
            raise ValueError(f"duplicated {what} term {term!r} in formula {fml!r}")
        out.append(item)
    return tuple(out)


def parse_formula(fml: str) -> Formula:
    """Parse ``"y ~ x1 + x2 | fe1 + fe2"`` into a :class:`Formula`.

    >>> parse_formula("res ~ did + x1 | city_code + year")
    Formula(y='res', x=('did', 'x1'), fe=('city_code', 'year'), rhs=('did', 'x1'))
    """
    if not isinstance(fml, str):
        raise TypeError("formula must be a string")
    if fml.count("~") != 1:
        raise ValueError(f"formula must contain exactly one '~': {fml!r}")
    lhs, rhs = fml.split("~")
    parts = _split_top(rhs, "|")
    if len(parts) > 2:
        raise ValueError(
            f"formula has more than one '|' (IV parts are not supported): {fml!r}"
        )
    ys = _terms(lhs, "dependent variable", fml)
    if len(ys) != 1:
        raise ValueError(f"only one dependent variable is supported: {fml!r}")
    (y,) = ys
    x_side = parts[0].strip()
    terms: tuple = () if x_side == "1" else _terms(x_side, "regressor", fml, allow_i=True)
    fe: tuple[str, ...] = ()
    if len(parts) == 2:
        fe_side = parts[1].strip()
        fe = () if fe_side == "0" else _terms(fe_side, "fixed effect", fml)
    if not terms and fe:
        raise ValueError(f"a fixed-effects model needs at least one regressor: {fml!r}")
    plain = tuple(t for t in terms if isinstance(t, str))
    return Formula(y=y, x=plain, fe=fe, rhs=terms)
