"""The codebase's layout rules that a newcomer relies on: each asset one hop from its name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from inoc_assets.definitions import build_definitions

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "inoc_assets" / "assets"
#: Companions that live with the asset they complete (inoc_assets/assets/__init__.py says so).
COMPANIONS = {
    "control_run": "runs",
    "control_eval": "run_eval",
    "control_scores": "run_scores",
    "elicitation_baseline": "elicitation",
    "logprob_baseline": "logprobs",
    "eval_instructions": "instructions",
}


def _asset_functions() -> dict[str, tuple[str, str]]:
    """Asset name (last key component) → (module file stem, decorated function name), over every shipped study."""
    graph = build_definitions(REPO / "experiments", selection=["all"]).resolve_asset_graph()
    out: dict[str, tuple[str, str]] = {}
    for node in graph.asset_nodes:
        fn = node.assets_def.op.compute_fn.decorated_fn
        out[node.key.path[-1]] = (fn.__module__.rsplit(".", 1)[-1], fn.__name__)
    return out


def test_every_asset_lives_in_the_module_named_after_it_in_a_function_of_its_name():
    found = _asset_functions()
    assert {"experiment", "prompt", "runs", "suppression", "slides_dataset"} <= set(found)
    wrong = {}
    for name, (module, function) in found.items():
        if name.startswith("imported_"):
            expected = ("imported", "imported")
            # one factory for every kind; the module names each key so a grep from the key lands there
            assert f"`{name}`" in (ASSETS / "imported.py").read_text(), name
        elif name == "eval_instructions":
            expected = ("instructions", "instructions")  # one multi-asset writes both instruction files
        else:
            expected = (COMPANIONS.get(name, name), name)
        if (module, function) != expected:
            wrong[name] = (module, function)
    assert not wrong, f"asset → (module, function) not named after the asset: {wrong}"


def test_no_asset_module_imports_another():
    offenders = []
    for path in sorted(ASSETS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name} imports {n}" for n in names if re.match(r"inoc_assets\.assets\.", n)]
    assert not offenders, offenders
