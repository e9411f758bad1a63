"""The DuckDB warehouse: schema and views as SQL (schema.sql, views.sql), connections (db.py).

The tidy tables are the public SQL interface; see README.md in this folder."""

from warehouse.bulk import BULK_TABLES
from warehouse.db import Warehouse, apply_schema, replace_rows

__all__ = ["BULK_TABLES", "Warehouse", "apply_schema", "replace_rows"]
