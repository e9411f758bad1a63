"""The heuristic registry (`registry`) and the code that computes its per-experiment entries (`compute`)."""
