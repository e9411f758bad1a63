"""Dagster table metadata from pandas frames: results shown as tables in the UI, not behind a markdown dialog."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool"}


def _cell(value: Any) -> Any:
    """A JSON-safe cell: NaN/None stay empty (never 0), numpy scalars become Python ones, floats are rounded."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    return value if isinstance(value, int | bool | str) else str(value)


def table(frame: pd.DataFrame, max_rows: int = 200) -> MetadataValue:
    """``frame`` as a Dagster table (its first ``max_rows`` rows; the schema names every column and its type)."""
    shown = frame.head(max_rows)
    schema = TableSchema(
        columns=[TableColumn(str(c), _TYPES.get(frame[c].dtype.kind, "string")) for c in frame.columns]
    )
    records = [TableRecord({str(c): _cell(v) for c, v in row.items()}) for row in shown.to_dict("records")]
    return MetadataValue.table(records=records, schema=schema)


def number(value: Any) -> float | int | None:
    """A plain numeric metadata value (plotted over time by the UI); None when undefined, never a sentinel."""
    cell = _cell(value)
    return cell if isinstance(cell, int | float) and not isinstance(cell, bool) else None
