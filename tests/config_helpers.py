"""Helpers for tests that vary a validated experiment config."""

from __future__ import annotations

from typing import Any


def config_with(cfg: Any, **changes: Any) -> Any:
    """A re-validated copy of ``cfg`` with fields replaced, nested ones spelled with ``__``
    (``data__datagen__keep="all"``)."""
    data = cfg.model_dump(by_alias=True)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return type(cfg).model_validate(data)
