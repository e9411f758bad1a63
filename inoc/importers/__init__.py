"""Importers for result files produced outside inoc (the original study's JSON formats)."""
