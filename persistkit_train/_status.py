"""The ``status`` report: stages done, trials per model, best scores, time spent, next step.

It only reads the store, so it is safe to call while a run is writing to it.
"""

from __future__ import annotations

from typing import Any

from persistkit.errors import CheckpointNotFoundError
from persistkit_train._fingerprint import load_fingerprint
from persistkit_train._stages import stage_names
from persistkit_train.i18n import _, format_duration


def status_lines(store: Any) -> list[str]:
    """Return the user-facing status of the run in ``store``, one line per entry."""
    fingerprint = load_fingerprint(store)
    if fingerprint is None:
        return [
            _("The store {url} holds no run yet. Start one with:").format(url=store.url),
            f"  persistkit-train run --data numbers.csv --store {store.url}",
        ]
    config = fingerprint.config
    models = list(config["models"])
    lines = [
        _("Store: {url}").format(url=store.url),
        _("Run: data {name} (SHA-256 {sha}), preset {preset}, {trials} trials per model, "
          "{folds} folds, {split} split").format(
            name=fingerprint.data_name,
            sha=fingerprint.data_sha256[:12],
            preset=config["preset"],
            trials=config["trials"],
            folds=config["folds"],
            split=config["split"],
        ),
        _("Stages:"),
    ]
    names = stage_names(models)
    next_stage = None
    total_seconds = 0.0
    for name in names:
        line, seconds, done = _stage_line(store, name, config)
        lines.append("  " + line)
        total_seconds += seconds
        if not done and next_stage is None:
            next_stage = name
    lines.append(_("Time spent: {duration}").format(duration=format_duration(total_seconds)))
    if next_stage is None:
        lines.append(_("All stages are done. Predict with: persistkit-train predict --store {url} "
                       "0812345678").format(url=store.url))
    else:
        lines.append(_("Next: {stage}").format(stage=next_stage))
    return lines


def _stage_line(store: Any, name: str, config: dict[str, Any]) -> tuple[str, float, bool]:
    """Return (line, seconds spent, done) for stage ``name``."""
    try:
        checkpoint = store.load(f"stages/{name}")
    except CheckpointNotFoundError:
        checkpoint = None
    if checkpoint is not None:
        seconds = float(checkpoint.metadata.get("elapsed_seconds", 0.0))
        detail = _stage_detail(name, checkpoint)
        text = _("{name}: done in {duration}{detail}").format(
            name=name, duration=format_duration(seconds), detail=detail
        )
        return text, seconds, True
    if name.startswith("tune-"):
        return _running_tune_line(store, name)
    if name == "stack":
        folds_done = sum(1 for key in store.keys("stack/") if key.rsplit("/", 1)[-1].startswith("fold-"))
        total = len(config["models"]) * int(config["folds"])
        return _("{name}: {done} of {total} out-of-fold fits saved").format(
            name=name, done=folds_done, total=total
        ), 0.0, False
    return _("{name}: not started").format(name=name), 0.0, False


def _stage_detail(name: str, checkpoint: Any) -> str:
    if name.startswith("tune-"):
        best = checkpoint.json("best.json")
        return _(", {trials} trials, best CV R² {score:.4f}").format(
            trials=best["trials_complete"], score=best["score"]
        )
    if name == "stack":
        meta = checkpoint.json("meta.json")
        return _(", meta-learner {kind}").format(kind=meta["kind"])
    return ""


def _running_tune_line(store: Any, name: str) -> tuple[str, float, bool]:
    model = name.removeprefix("tune-")
    try:
        progress = store.load(f"tune/{model}/progress").json("progress.json")
    except CheckpointNotFoundError:
        return _("{name}: not started").format(name=name), 0.0, False
    best = progress["best"]
    best_text = "-" if best is None else f"{best:.4f}"
    seconds = float(progress["seconds"])
    text = _("{name}: {done} of {total} trials, best CV R² {best}, {duration} so far").format(
        name=name,
        done=progress["complete"],
        total=progress["total"],
        best=best_text,
        duration=format_duration(seconds),
    )
    return text, seconds, False
