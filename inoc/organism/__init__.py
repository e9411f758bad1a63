"""The model organism (placeholder init; finalized below)."""
