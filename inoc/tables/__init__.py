"""Table builders: plain data frames in (warehouse reads), the warehouse's analysis tables out.

Each asset that writes analysis tables calls one builder here and writes what it returns.
"""
