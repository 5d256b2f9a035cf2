"""The code's structure stays as docs/architecture.md draws it.

* `lint-imports` checks the import-linter contracts of pyproject.toml: the layers
  (application above studies and data quality, above the generic engine and the warehouse),
  an engine that imports no study, no warehouse and no orchestration library;
* no module imports a private name (``_x``) of another top-level package;
* ruff's pyflakes rules: no undefined name, no unused import.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("warehouse", "estimation", "expectations", "flows")
BIN = Path(sys.executable).parent


def test_import_linter_contracts_are_kept():
    proc = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _private_imports(path: Path) -> list[str]:
    own = path.relative_to(ROOT).parts[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in PACKAGES and top != own:
                found += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}"
                          for a in node.names if a.name.startswith("_")]
                if any(part.startswith("_") and part != "__init__" for part in node.module.split(".")):
                    found.append(f"{path.relative_to(ROOT)}: from {node.module}")
    return found


def test_no_private_import_across_packages():
    offenders = [line for pkg in PACKAGES for path in sorted((ROOT / pkg).rglob("*.py"))
                 for line in _private_imports(path)]
    assert offenders == []


def test_no_undefined_names_or_unused_imports():
    proc = subprocess.run([str(BIN / "ruff"), "check", "--select", "F", "--no-cache", "--output-format", "concise",
                           *PACKAGES, "tests"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
