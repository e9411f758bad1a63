"""Read the prompt tables of ../shared/docs/SPEC.md, independently of inoc's own code.

Used by the test that checks the shipped configs against the specification."""

from __future__ import annotations

import re
from pathlib import Path

_ROW = re.compile(r"^\|\s*([^|`]+?)\s*\|\s*`([^`]+)`\s*\|\s*(.+?)\s*\|\s*$")  # | group | `key` | text |
_EM_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|\s*$")  # | `key` | type | text |


def spec_sections(spec: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Section title (### heading) → rows (group-or-type, key, text) of its prompt tables."""
    sections: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in spec.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections.setdefault(current, [])
            continue
        if current is None:
            continue
        if m := _ROW.match(line):
            sections[current].append((m.group(1), m.group(2), m.group(3)))
        elif m := _EM_ROW.match(line):
            sections[current].append((m.group(2), m.group(1), m.group(3)))
    return {k: v for k, v in sections.items() if v}
