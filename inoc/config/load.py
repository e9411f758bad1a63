"""Load experiment YAMLs into `ExperimentConfig`, with errors a researcher can act on.

Every problem is reported as `file:line: field.path: what was expected`, never as a traceback:
malformed YAML (with its line), duplicate mapping keys (which PyYAML would silently overwrite),
unknown fields, wrong types, unsafe prompt keys, groups naming unknown prompts, missing judges.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from inoc.config.schema import ExperimentConfig


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in one experiment file. `str()` is the user-facing message."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {seen[key] + 1}); each key may appear once",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest YAML node reachable along a pydantic error location."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            if nxt is None:
                # An unknown field: point at its key.
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out.replace("import_", "import")


_PATH_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+|\[\d+\])*): (.*)$", re.S)


def _split_path(path: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for name, index in re.findall(r"([A-Za-z0-9_]+)|\[(\d+)\]", path):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _expectation(err: dict[str, Any]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown field (check its spelling; every field is listed in experiments/_template.yaml)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"expected one of {err.get('ctx', {}).get('expected', '')}, got {err.get('input')!r}"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    return f"{msg} (got {err.get('input')!r})" if "input" in err and not isinstance(err["input"], dict) else msg


def expand_path(value: str) -> str:
    """Expand ${INOC_SHARED_DIR} and other environment variables in a configured path."""
    if "${INOC_SHARED_DIR}" in value and "INOC_SHARED_DIR" not in os.environ:
        from inoc.settings import shared_dir

        shared = shared_dir()
        if shared is not None:
            value = value.replace("${INOC_SHARED_DIR}", str(shared))
    return os.path.expandvars(value)


def _read_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    try:
        return yaml.compose(text, Loader=_UniqueKeyLoader), yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(file, line, "", f"malformed YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, "", f"malformed YAML: {exc}")]) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists included) replaces the parent's."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve_extends(data: dict[str, Any], root: yaml.Node | None, file: str, seen: tuple[str, ...]) -> dict[str, Any]:
    """`extends: <experiment>` inherits every field of experiments/<experiment>.yaml (same folder).

    Mappings merge key by key; the top-level fields a child lists in `replace:` (e.g. [prompts, groups])
    replace the parent's instead."""
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return data
    line = _node_line(root, ("extends",))
    if not isinstance(parent_name, str) or file.startswith("<"):
        raise ConfigError(
            [Problem(file, line, "extends", "expected the name of another experiment file in the same folder")]
        )
    parent = Path(file).with_name(f"{parent_name}.yaml")
    if str(parent) in seen:
        raise ConfigError(
            [Problem(file, line, "extends", f"circular inheritance: {' -> '.join(seen + (str(parent),))}")]
        )
    if not parent.is_file():
        raise ConfigError([Problem(file, line, "extends", f"no experiment file {parent.name} beside this one")])
    p_root, p_data = _read_yaml(parent.read_text(encoding="utf-8"), str(parent))
    if not isinstance(p_data, dict):
        raise ConfigError([Problem(str(parent), 1, "", "expected a mapping of fields at the top")])
    p_data = _resolve_extends(p_data, p_root, str(parent), seen + (str(parent),))
    p_data.pop("name", None)
    replace = data.pop("replace", [])
    if not isinstance(replace, list) or not all(isinstance(k, str) for k in replace):
        raise ConfigError(
            [
                Problem(
                    file,
                    _node_line(root, ("replace",)),
                    "replace",
                    "expected a list of top-level field names (e.g. [prompts, groups])",
                )
            ]
        )
    for key in replace:  # e.g. a child's own prompt set, not a union with the parent's
        p_data.pop(key, None)
    return _deep_merge(p_data, data)


def parse_experiment(text: str, file: str) -> ExperimentConfig:
    """Validate YAML text; `file` is used in messages and to default/check the experiment name."""
    root, data = _read_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "expected a mapping of fields (name, model, traits, …) at the top")])
    data = _resolve_extends(data, root, file, (file,))
    stem = Path(file).stem.lstrip("_")  # "_template.yaml" validates as "template"
    data.setdefault("name", stem)
    if data["name"] != stem and not file.startswith("<"):
        line = _node_line(root, ("name",))
        raise ConfigError([Problem(file, line, "name", f"must equal the file name {stem!r}, got {data['name']!r}")])
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            message = _expectation(err)
            # Cross-field checks report at the model's location and name the field in their message.
            m = _PATH_PREFIX.match(message)
            if m and not loc:
                loc, message = _split_path(m.group(1)), m.group(2)
            problems.append(Problem(file, _node_line(root, loc), _field_path(loc), message))
        raise ConfigError(problems) from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), None, "", "not UTF-8 text")]) from None
    return parse_experiment(text, str(path))


def experiment_files(directory: str | Path) -> list[Path]:
    """Experiment YAMLs of a folder; files starting with `_` (the template) are documentation."""
    directory = Path(directory)
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and not p.name.startswith("_"))


@dataclass
class Catalog:
    """The experiments of a folder: valid configs with their files, and the errors of the rest."""

    configs: dict[str, ExperimentConfig]
    paths: dict[str, Path]
    errors: list[ConfigError]


def load_all(directory: str | Path) -> Catalog:
    """Every experiment of a folder; an invalid file is reported in `errors`, never raised, so one
    bad YAML does not take the other experiments (or the UI) down."""
    catalog = Catalog({}, {}, [])
    for path in experiment_files(directory):
        try:
            cfg = load_experiment(path)
        except ConfigError as exc:
            catalog.errors.append(exc)
            continue
        catalog.configs[cfg.name] = cfg
        catalog.paths[cfg.name] = path
    return catalog


def resolved_mapping(path: str | Path) -> dict[str, Any]:
    """The YAML mapping of an experiment file with ``extends:`` merged in (before validation)."""
    path = Path(path)
    root, data = _read_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, "", "expected a mapping of fields at the top")])
    data = _resolve_extends(data, root, str(path), (str(path),))
    data.setdefault("name", path.stem)
    return data


def locate(path: str | Path, loc: tuple[Any, ...]) -> tuple[str, int | None]:
    """The file (this one or the one it ``extends:``) and line that set the field at ``loc``."""
    path, first, seen = Path(path), Path(path), set()
    while path.is_file() and path not in seen:
        seen.add(path)
        root, data = _read_yaml(path.read_text(encoding="utf-8"), str(path))
        node: Any = data
        for part in loc:
            node = (
                node.get(part)
                if isinstance(node, dict)
                else (node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
            )
            if node is None:
                break
        if node is not None:
            return str(path), _node_line(root, loc)
        if not isinstance(data, dict) or not isinstance(data.get("extends"), str):
            break
        path = path.with_name(f"{data['extends']}.yaml")
    return str(first), None
