"""`runs` and `training_losses` rows of a trained run, and the smoothed loss curve shown for it
(docs/methods.md#training)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from inoc.pipeline.plans import RunPlan


def run_row(plan: RunPlan, n_steps: int) -> pd.DataFrame:
    """The run's `runs` row (keyed by experiment and run when written)."""
    return pd.DataFrame(
        [
            {
                "batch": plan.batch,
                "prompt_key": plan.prompt_key,
                "prefix_type": plan.prefix_type,
                "learning_rate": plan.learning_rate,
                "n_steps": n_steps,
            }
        ]
    )


def loss_rows(losses: pd.DataFrame) -> pd.DataFrame:
    """`training_losses` rows from the train job's ``losses.parquet`` (its ``lr`` column is the rate)."""
    return pd.DataFrame(
        {
            "step": losses.step,
            "loss": losses.loss,
            "learning_rate": losses.lr,
            "grad_norm": losses.grad_norm,
            "epoch": losses.epoch,
        }
    )


def smoothed_losses(loss: pd.Series) -> pd.Series:
    """A centred rolling mean over about a tenth of the run (at least 1 step): the trend under per-batch noise."""
    window = max(1, len(loss) // 10)
    return loss.rolling(window, min_periods=1, center=True).mean()


def loss_curve(losses: pd.DataFrame, points: int = 12) -> pd.DataFrame:
    """About ``points`` evenly spaced rows of step, loss and smoothed loss: the curve in a run's metadata."""
    curve = pd.DataFrame({"step": losses.step, "loss": losses.loss, "smoothed": smoothed_losses(losses.loss)})
    return curve.iloc[np.unique(np.linspace(0, len(curve) - 1, min(len(curve), points)).round().astype(int))]
