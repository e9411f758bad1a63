"""One module per asset, named after it: `<experiment>/<name>` lives in `inoc_assets/assets/<name>.py`.

A companion lives with the asset it completes: `control_run`, `control_eval`, `control_scores` in
`runs.py`, `run_eval.py`, `run_scores.py`; `elicitation_baseline` and `logprob_baseline` in
`elicitation.py` and `logprobs.py`; `eval_instructions` in `instructions.py`; every
`imported_<kind>` in `imported.py`. Each decorated function bears its asset's name.

A module holds the asset's wiring and thin glue; the work is in the Dagster-free `inoc` package and
the plumbing shared by assets in `inoc_assets.plumbing`. No asset module imports another (an
import-linter contract). Which assets an experiment has is decided in `inoc_assets.definitions`.
"""
