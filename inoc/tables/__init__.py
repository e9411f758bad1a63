"""Table builders: plain data frames in (what the assets read from the warehouse and job outputs), the
warehouse's tables out. Each asset that writes a table calls a builder here and writes what it returns.

- `suppression`: suppression per prompt and per batch against its control;
- `heuristic_performance`: heuristics against the suppression measures;
- `prompt_tables`: the W matrices and the per-prompt heuristic, decomposition and angle tables;
- `prompt_geometry`: all of `prompt_geometry`'s tables in one call;
- `logprobs`, `scores`, `training`: the rows of the score, judge and train stages.
"""
