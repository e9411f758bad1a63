"""docs/methods.md documents every registry heuristic and every column of the analysis tables, and
every `docs/<doc>.md#anchor` the repository cites exists.

A heuristic's entry is its row in the registry table of methods.md: the row names the key, and the
paper id and the slides_dataset column where the heuristic has them. A table's columns are read from
a freshly created (empty) warehouse, so a column added to schema.sql or views.sql without a line in
methods.md fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from inoc.heuristics.registry import REGISTRY
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
METHODS = DOCS / "methods.md"
#: Tables and views whose every column needs an entry, each in the section under `<a id="table-<name>">`.
TABLES = ("prompt_heuristics", "suppression", "em_summary")
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def _section(text: str, anchor: str) -> str:
    """The text from `<a id="anchor">` to the next anchor or `## ` heading after its own heading."""
    tag = f'<a id="{anchor}"></a>'
    start = text.find(tag)
    assert start >= 0, f"docs/methods.md: no anchor {anchor!r}"
    body = text[start + len(tag) :]
    body = body.split("\n", 2)[-1]  # skip the heading line that follows the anchor
    stop = min((m.start() for m in (ANCHOR.search(body), re.search(r"^## ", body, re.M)) if m), default=len(body))
    return body[:stop]


def _registry_rows(text: str) -> dict[str, str]:
    """First cell (a backticked key) → the whole table row, in the registry section."""
    rows = {}
    for line in _section(text, "heuristic-registry").splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_registry_heuristic_has_an_entry() -> None:
    rows = _registry_rows(METHODS.read_text(encoding="utf-8"))
    problems = []
    for h in REGISTRY.values():
        row = rows.get(h.key)
        if row is None:
            problems.append(f"{h.key}: no row in the registry table of docs/methods.md")
            continue
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if h.id and h.id not in cells:
            problems.append(f"{h.key}: its row does not give the paper id {h.id}")
        if h.slide_column and f"`{h.slide_column}`" not in row:
            problems.append(f"{h.key}: its row does not name the slides_dataset column `{h.slide_column}`")
    stale = sorted(set(rows) - set(REGISTRY))
    problems += [f"{k}: documented in the registry table but not registered" for k in stale]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def warehouse_columns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    wh = Warehouse(tmp_path_factory.mktemp("methods_doc") / "warehouse.duckdb")
    wh.ensure()
    with wh.reader() as conn:
        return {t: [r[0] for r in conn.execute(f"DESCRIBE {t}").fetchall()] for t in TABLES}


@pytest.mark.parametrize("table", TABLES)
def test_every_column_has_an_entry(table: str, warehouse_columns: dict[str, list[str]]) -> None:
    columns = warehouse_columns[table]
    assert len(columns) >= 5, f"{table}: DESCRIBE returned {columns}"
    section = _section(METHODS.read_text(encoding="utf-8"), f"table-{table}")
    missing = [c for c in columns if not re.search(rf"^\|\s*`{re.escape(c)}`\s*\|", section, re.M)]
    assert not missing, f"docs/methods.md, section table-{table}: no row for column(s) {missing}"


def _cited_anchors() -> list[tuple[str, str, str]]:
    """(citing file, doc name, anchor) of every `docs/<doc>.md#<anchor>` in the tracked files and the docs' own `(#…)` links."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    pattern = re.compile(r"docs/(methods|architecture)\.md#([A-Za-z0-9_-]+)")
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".sql", ".yaml", ".yml", ".toml", ".sh", ".txt"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [(name, m.group(1), m.group(2)) for m in pattern.finditer(text)]
    for doc in ("methods", "architecture"):
        text = (DOCS / f"{doc}.md").read_text(encoding="utf-8")
        found += [(f"docs/{doc}.md", doc, m.group(1)) for m in re.finditer(r"\]\(#([A-Za-z0-9_-]+)\)", text)]
        other = "architecture" if doc == "methods" else "methods"
        found += [
            (f"docs/{doc}.md", other, m.group(1)) for m in re.finditer(rf"\]\({other}\.md#([A-Za-z0-9_-]+)\)", text)
        ]
    return found


def test_every_cited_anchor_exists() -> None:
    anchors = {
        doc: set(ANCHOR.findall((DOCS / f"{doc}.md").read_text(encoding="utf-8")))
        for doc in ("methods", "architecture")
    }
    cited = _cited_anchors()
    assert cited, "no citation of docs/methods.md found at all"
    broken = sorted({f"{src}: docs/{doc}.md#{a}" for src, doc, a in cited if a not in anchors[doc]})
    assert not broken, "anchors cited but not defined:\n" + "\n".join(broken)
