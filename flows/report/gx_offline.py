"""Great Expectations Data Docs that work offline.

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from CDNs, and its
logo from S3; the great_expectations package ships only its own fonts, images and styles
(render/view/static, which GX copies to <docs>/static). Offline the pages render unstyled and
the index's tables stay empty (bootstrap-table fills them from inline JSON). `make_offline`:

* copies GX's static folder from the installed package when it is missing;
* copies cityres's small offline kit (static/gx-offline.css: the Bootstrap classes the pages
  use; static/gx-offline.js: the few jQuery/Bootstrap/bootstrap-table calls they make) into
  <docs>/static/cityres/;
* removes every <link>/<script> that points at a CDN, puts the kit in its place, and points
  the logo at the local copy — so no page requests anything from the network.

Idempotent: a page already rewritten is marked and left alone.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from importlib import resources
from pathlib import Path

OFFLINE_MARK = "<!-- cityres: offline data docs -->"
KIT = ("gx-offline.css", "gx-offline.js")
KIT_FOLDER = "static/cityres"
LOGO = "static/images/logo-long.png"

_EXTERNAL_LINK = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']https?://[^"']*["'][^>]*>[ \t]*\n?""", re.I)
_EXTERNAL_SCRIPT = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']https?://[^"']*["'][^>]*>\s*</script>[ \t]*\n?""",
                              re.I)
_EXTERNAL_IMG = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["'])https?://[^"']*\2""", re.I | re.S)
_EXTERNAL_CSS_URL = re.compile(r"""url\(\s*(["']?)https?://[^)"']*\1\s*\)""", re.I)
_HEAD = re.compile(r"<head\b[^>]*>", re.I)
# GX's own relative links to static/ (one level short on validation pages): from the page's depth.
_STATIC_REF = re.compile(r"""(\b(?:href|src)\s*=\s*["'])(?:\./|(?:\.\./)+)?static/""", re.I)

# What still points off the machine once a page is rewritten (the tests assert it is nothing;
# plain <a href> links are navigation, not requests, and stay).
_REFERENCES = (
    re.compile(r"""<(?:script|img|iframe|source|embed)\b[^>]*\bsrc\s*=\s*["'](https?:)?//[^"']*["']""", re.I),
    re.compile(r"""<link\b[^>]*\bhref\s*=\s*["'](https?:)?//[^"']*["']""", re.I),
    re.compile(r"""url\(\s*["']?(https?:)?//""", re.I),
    re.compile(r"""@import\s+["']?(https?:)?//""", re.I),
)


def external_references(page: str) -> list[str]:
    """Every tag or CSS rule of `page` that would make the browser fetch from the network."""
    return [m.group(0) for pattern in _REFERENCES for m in pattern.finditer(page)]


def gx_static_source() -> Path | None:
    """render/view/static of the installed great_expectations (found without importing it)."""
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "render" / "view" / "static"
    return folder if folder.is_dir() else None


def rewrite_page(page: str, prefix: str) -> str:
    """One Data Docs page without CDN references; `prefix` leads from the page to the docs root."""
    if OFFLINE_MARK in page:
        return page
    page = _EXTERNAL_LINK.sub("", page)
    page = _EXTERNAL_SCRIPT.sub("", page)
    page = _EXTERNAL_IMG.sub(lambda m: f"{m.group(1)}{m.group(2)}{prefix}{LOGO}{m.group(2)}", page)
    page = _EXTERNAL_CSS_URL.sub(f"url('{prefix}{LOGO}')", page)
    page = _STATIC_REF.sub(lambda m: f"{m.group(1)}{prefix}static/", page)
    kit = (f'\n{OFFLINE_MARK}\n<link rel="stylesheet" href="{prefix}{KIT_FOLDER}/{KIT[0]}">\n'
           f'<script src="{prefix}{KIT_FOLDER}/{KIT[1]}"></script>\n')
    head = _HEAD.search(page)
    if head is None:
        return kit + page
    # Before GX's own inline styles, as the Bootstrap link was: GX's rules keep the last word.
    return page[:head.end()] + kit + page[head.end():]


def _copy_missing(source, target: Path) -> None:
    """Copy a folder (a Path or an importlib Traversable) file by file, keeping existing files."""
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir():
            _copy_missing(entry, destination)
        elif not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(entry.read_bytes())


def make_offline(docs_dir: Path) -> list[Path]:
    """Rewrite every page of a Data Docs site for offline reading; return the pages rewritten."""
    docs_dir = Path(docs_dir)
    gx_static = gx_static_source()
    if gx_static is not None:
        _copy_missing(gx_static, docs_dir / "static")
    kit_dir = docs_dir / KIT_FOLDER
    kit_dir.mkdir(parents=True, exist_ok=True)
    kit_source = resources.files("flows.report") / "static"
    for name in KIT:
        with resources.as_file(kit_source / name) as path:
            shutil.copyfile(path, kit_dir / name)
    rewritten = []
    for page_path in sorted(docs_dir.rglob("*.html")):
        depth = len(page_path.relative_to(docs_dir).parts) - 1
        page = page_path.read_text(encoding="utf-8")
        new = rewrite_page(page, "../" * depth)
        if new != page:
            page_path.write_text(new, encoding="utf-8")
            rewritten.append(page_path)
    return rewritten
