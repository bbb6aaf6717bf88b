"""Progress bars of a training run: stage, Optuna trials and boosting rounds.

The pipeline reports progress through :class:`ProgressReporter`; the CLI creates one with
bars enabled, library callers get a silent one. Three tqdm bars stay on screen and update
in place: the stage (position 0), the trials of the current search with the best score
(position 1) and the rounds of the current fit (position 2). Log lines must go through
:func:`tqdm.tqdm.write` (the CLI installs such a handler) so they print above the bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persistkit_train.i18n import _


class ProgressReporter:
    """Stage, trial and round bars; every method is a no-op when disabled."""

    def __init__(self, *, enabled: bool = False) -> None:
        self._enabled = enabled
        self._stage_bar: Any = None
        self._trial_bar: Any = None
        self._round_bar: Any = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    def stage(self, index: int, total: int, name: str) -> None:
        """Show that stage ``index`` (1-based) of ``total``, ``name``, is running."""
        if not self._enabled:
            return
        if self._stage_bar is None:
            self._stage_bar = self._new_bar(total=total, position=0, unit=_("stage"))
        self._stage_bar.set_description_str(_("Stage {name}").format(name=name))
        self._stage_bar.n = index - 1
        self._stage_bar.refresh()

    def start_trials(self, model: str, done: int, total: int) -> None:
        """Open the trial bar of the search for ``model`` with ``done`` trials finished."""
        if not self._enabled:
            return
        self._close_bar("_trial_bar")
        self._trial_bar = self._new_bar(total=total, initial=done, position=1, unit=_("trial"))
        self._trial_bar.set_description_str(_("{model} trials").format(model=model))

    def trial_finished(self, done: int, best: float | None) -> None:
        """Advance the trial bar to ``done`` finished trials and show the best score."""
        if self._trial_bar is None:
            return
        if best is not None:
            self._trial_bar.set_postfix_str(_("best R² {score:.4f}").format(score=best))
        self._trial_bar.update(done - self._trial_bar.n)

    def start_rounds(self, label: str, total: int) -> None:
        """Open the round bar of one boosting fit."""
        if not self._enabled:
            return
        self._close_bar("_round_bar")
        self._round_bar = self._new_bar(total=total, position=2, unit=_("round"))
        self._round_bar.set_description_str(label)

    @property
    def round_callback(self) -> Callable[[int, int], None] | None:
        """The per-round callback for the fits, or None when the bars are off.

        Without it a CatBoost fit runs no Python code between iterations, which is
        faster (CatBoost pays for every Python callback on every iteration).
        """
        return self.round_finished if self._enabled else None

    def round_finished(self, done: int, total: int) -> None:
        """Advance the round bar; a resumed fit starts at its checkpointed round."""
        if self._round_bar is None:
            return
        self._round_bar.total = total
        self._round_bar.update(done - self._round_bar.n)

    def end_trials(self) -> None:
        self._close_bar("_round_bar")
        self._close_bar("_trial_bar")

    def close(self) -> None:
        """Close every bar; the stage bar shows the number of stages finished."""
        self.end_trials()
        self._close_bar("_stage_bar")

    def _new_bar(self, **options: Any) -> Any:
        from tqdm.auto import tqdm

        return tqdm(leave=options["position"] == 0, dynamic_ncols=True, **options)

    def _close_bar(self, attribute: str) -> None:
        bar = getattr(self, attribute)
        if bar is not None:
            bar.close()
            setattr(self, attribute, None)
