"""A sweep's grid search: Optuna's GridSampler, without its stop at the end of the grid (imported on demand by
core.sweep, so that importing core.sweep does not import Optuna)."""

from __future__ import annotations

from optuna.samplers import GridSampler


class SweepGrid(GridSampler):
    """GridSampler's own after_trial calls study.stop() once the grid is covered, which only study.optimize
    allows: elsewhere it raises, and a grid sweep's last trial crashed its worker. A sweep asks and tells, and
    ends at its number of trials, at most the grid's points (core.sweep_space), so it has nothing to stop."""

    def after_trial(self, study, trial, state, values) -> None:
        return None
