"""`make bench`: cityres against its peers, section by section; writes BENCHMARKS.md.

Each section is a module of this folder (see the list SECTIONS) exposing NAME, TITLE, an optional
``add_arguments(parser)`` (options prefixed with its name), ``run(workdir, args) -> dict`` and
``lines(result) -> list[str]``.  The driver runs the selected sections, stores each result in
tests/benchmarks/results/<NAME>.json and renders BENCHMARKS.md from every stored result in the
order of SECTIONS, so that running one section keeps the others' figures.

Usage:
    python -m tests.benchmarks.run                      # every section (= make bench)
    python -m tests.benchmarks.run --only peers,growth  # some sections
    python -m tests.benchmarks.run --skip twfe_large    # all but some
    python -m tests.benchmarks.run --render             # only rebuild BENCHMARKS.md from the stored results
    python -m tests.benchmarks.run --list               # the sections and whether their module is present
Section options (sizes, repeats, ...): python -m tests.benchmarks.run --help
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import traceback
from pathlib import Path

from tests.benchmarks.common import RESULTS, ROOT

# The order of the runs and of BENCHMARKS.md.  A section is one line; a module that is not there
# (yet) is skipped with a note.  growth comes after firm_scale, whose stored growth it plots.
SECTIONS = [
    "placebo",
    "staggered_placebo",
    "twfe_large",
    "multi_fe",
    "peers",
    "firm_scale",
    "refresh",
    "growth",
]


def load(name: str):
    """The section's module, or None when it does not exist (a section still to be written)."""
    module = f"tests.benchmarks.{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def stored(name: str) -> dict | None:
    path = result_path(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def store(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_path(name).write_text(json.dumps(result, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def selected(only: str | None, skip: str | None) -> list[str]:
    names = set(SECTIONS)
    chosen = [s.strip() for s in only.split(",") if s.strip()] if only else list(SECTIONS)
    dropped = {s.strip() for s in skip.split(",") if s.strip()} if skip else set()
    unknown = [s for s in [*chosen, *dropped] if s not in names]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; the sections are: {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in chosen and s not in dropped]


def header(results: dict[str, dict]) -> list[str]:
    lines = ["# Benchmarks", "",
             ("Written by `make bench` (`python -m tests.benchmarks.run`, every section) or "
              "`python -m tests.benchmarks.run --only <section>` from the results stored in "
              "`tests/benchmarks/results/`; each section states its own date and the command that reruns it. "
              "Both sides of a comparison run in the same invocation."), ""]
    if not results:
        return lines + ["No section has been measured yet.", ""]
    seen: dict[tuple, list[str]] = {}
    for name, r in results.items():
        key = (r.get("machine"), tuple(sorted((r.get("versions") or {}).items())))
        seen.setdefault(key, []).append(name)
    for (mach, vers), names in seen.items():
        scope = "" if len(seen) == 1 else f" ({', '.join(names)})"
        text = ", ".join(f"{k} {v}" for k, v in vers if v) or "unknown"
        lines.append(f"- Machine{scope}: {mach}; versions: {text}.")
    return lines + ["- The machine is shared (2 cores) with other work: timings vary between runs (each run is "
                    "shown next to the median).", ""]


def render(out: Path) -> str:
    results = {name: r for name in SECTIONS if (r := stored(name)) is not None}
    lines = header(results)
    for number, name in enumerate(SECTIONS, start=1):
        module = load(name)
        title = getattr(module, "TITLE", name)
        lines += [f"## {number}. {title}", ""]
        r = results.get(name)
        if module is None:
            lines += [f"Section `{name}`: its module `tests/benchmarks/{name}.py` is not there yet.", ""]
            continue
        if r is None:
            lines += [f"Not measured yet: `python -m tests.benchmarks.run --only {name}`.", ""]
            continue
        lines += [f"Measured {r.get('date', '?')} (commit {r.get('commit') or '?'}): `{r.get('command', '?')}`", ""]
        lines += [*module.lines(r), ""]
    text = "\n".join(lines)
    out.write_text(text, encoding="utf-8")
    return text


def parser(modules: dict) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="cityres benchmarks", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="sections: " + ", ".join(SECTIONS))
    ap.add_argument("--only", help="comma-separated sections to run")
    ap.add_argument("--skip", help="comma-separated sections not to run")
    ap.add_argument("--render", action="store_true", help="only rebuild BENCHMARKS.md from the stored results")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    ap.add_argument("--workdir", help="keep generated panels here between runs (default: a temporary directory)")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    for module in modules.values():
        if module is not None and hasattr(module, "add_arguments"):
            module.add_arguments(ap)
    return ap


def run_sections(names: list[str], modules: dict, args, workdir: Path) -> list[str]:
    """Run and store each section; the names of those that failed."""
    failed: list[str] = []
    for name in names:
        module = modules[name]
        if module is None:
            print(f"note: section {name} skipped: tests/benchmarks/{name}.py is not there yet", flush=True)
            continue
        print(f"== {name}", flush=True)
        try:
            result = module.run(workdir, args)
        except Exception:  # one broken section must not cost the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        store(name, result)
        print(json.dumps({"section": name, "stored": str(result_path(name).relative_to(ROOT))}), flush=True)
    return failed


def main(argv: list[str] | None = None) -> None:
    modules = {name: load(name) for name in SECTIONS}
    args = parser(modules).parse_args(argv)
    if args.list:
        for name, module in modules.items():
            state = "no module yet" if module is None else ("stored" if result_path(name).exists() else "not run")
            print(f"{name:20s} {state}")
        return
    failed: list[str] = []
    if not args.render:
        names = selected(args.only, args.skip)
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
            failed = run_sections(names, modules, args, Path(args.workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="cityres-bench-") as tmp:
                failed = run_sections(names, modules, args, Path(tmp))
    render(Path(args.out))
    print(f"wrote {args.out}", file=sys.stderr)
    if failed:
        raise SystemExit(f"failed sections (their stored results were kept): {', '.join(failed)}")


if __name__ == "__main__":
    main()
