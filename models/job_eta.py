"""How long a running training job has left, measured from its progress events (never guessed).

Read by the Training page (models.job_state.read_progress gives the events); page actions count down
their stages with the same count_down (models.actions).
"""

from __future__ import annotations

import re
import time
from typing import Any

from models.progress_events import PredictEvent, ProgressEvent, StageEvent, StepEvent, events_of

# An ETA is shown only once this many timed intervals exist (between logged training steps, whole
# epochs when an epoch is shorter than the log interval, or prediction batches): one interval is noise.
MIN_ETA_INTERVALS = 2


def count_down(first: PredictEvent | StageEvent, last: PredictEvent | StageEvent, now: float) -> float:
    """Seconds left for the items of ``last`` not done yet, at the mean time per item from ``first`` to
    ``last`` (smoothed: one slow batch moves it little), counted down from ``last``; never below 0.
    ``last`` must have done more items than ``first``."""
    per_item = (float(last["time"]) - float(first["time"])) / (int(last["done"]) - int(first["done"]))
    left = (int(last["total"]) - int(last["done"])) * per_item - (now - float(last["time"]))
    return max(0.0, left)


def _step_number(event: StepEvent, per_epoch: int) -> int:
    return int(event.get("global_step") or (int(event["epoch"]) - 1) * per_epoch + int(event["step"]))


def estimate_eta(
    job: dict[str, Any], progress: list[ProgressEvent], now: float | None = None
) -> tuple[float, str] | None:
    """(seconds left in the running phase, what the estimate covers), or None until there is data
    (and always for a job that is not running).

    job: the job.json (its 'phase', 'config' epochs / eval_every and 'steps_per_epoch' are used);
    progress: its events, oldest first; now: Unix seconds, the current time when None.

    Measured, never guessed: training time per step is the mean over every interval between two
    logged steps of one epoch so far (smoothed; the warm-up before the first step and the evaluation
    between epochs are left out), plus the mean evaluation time of an evaluated epoch times the
    evaluations still to come, once one has been timed. Prediction: the mean time per image so far.
    Counted down from the last event; never below 0.
    """
    if job.get("status") != "running":
        return None
    now = time.time() if now is None else now
    phase = str(job.get("phase") or "")
    if phase.startswith("predicting"):
        events = events_of(progress, "predict")
        if len(events) < MIN_ETA_INTERVALS or int(events[-1]["done"]) <= int(events[0]["done"]):
            return None
        return count_down(events[0], events[-1], now), "prediction on the val dataset"
    fold = _FOLD_PHASE.fullmatch(phase)
    if fold:
        return _fold_eta(job, progress, int(fold.group(1)) - 1, int(fold.group(2)), now)
    if phase != "training":
        return None
    config = job.get("config") or {}
    epochs = int(config.get("epochs") or 0)
    eval_every = max(1, int(config.get("eval_every") or 1))
    per_epoch = int(job.get("steps_per_epoch") or 0)
    steps: list[StepEvent] = events_of(progress, "step")
    finished = events_of(progress, "epoch")
    if not epochs or not per_epoch or not (steps or finished):
        return None
    seconds = count = 0.0
    intervals = 0
    for a, b in zip(steps, steps[1:], strict=False):
        gained = _step_number(b, per_epoch) - _step_number(a, per_epoch)
        if a.get("epoch") == b.get("epoch") and gained > 0:
            seconds += float(b["time"]) - float(a["time"])
            count += gained
            intervals += 1
    last_time = max(float(e["time"]) for e in [*steps, *finished])
    done_epochs = max((int(e["epoch"]) for e in finished), default=0)
    evaluations_left = sum(
        1 for e in range(done_epochs + 1, epochs + 1) if e % eval_every == 0 or e == epochs
    )
    if intervals >= MIN_ETA_INTERVALS:
        per_step = seconds / count
        done_steps = max(_step_number(steps[-1], per_epoch), done_epochs * per_epoch) if steps else 0
        left = (epochs * per_epoch - done_steps) * per_step
        timed = []  # evaluation = from the epoch's last logged step to its end, less the steps not logged
        for epoch_event in (e for e in finished if e.get("val")):
            in_epoch = [e for e in steps if e.get("epoch") == epoch_event["epoch"]]
            if in_epoch:
                unlogged = per_epoch - int(in_epoch[-1]["step"])
                spent = float(epoch_event["time"]) - float(in_epoch[-1]["time"]) - unlogged * per_step
                timed.append(max(0.0, spent))
        if timed:
            left += evaluations_left * (sum(timed) / len(timed))
            covers = "training and evaluation"
        elif evaluations_left:
            covers = "training steps; evaluation not timed yet"
        else:
            covers = "training"
        return max(0.0, left - (now - last_time)), covers
    epoch_times = [float(e["epoch_s"]) for e in finished if e.get("epoch_s") is not None]
    if len(epoch_times) >= MIN_ETA_INTERVALS:  # epochs shorter than the log interval: time whole epochs
        recent = epoch_times[1:] if len(epoch_times) > MIN_ETA_INTERVALS else epoch_times
        left = (epochs - done_epochs) * (sum(recent) / len(recent))
        return max(0.0, left - (now - last_time)), "training and evaluation (whole epochs)"
    return None


_FOLD_PHASE = re.compile(r"training fold (\d+) of (\d+)")


def _fold_eta(
    job: dict[str, Any], progress: list[ProgressEvent], fold: int, folds: int, now: float
) -> tuple[float, str] | None:
    """A ``--folds K`` job: the running fold's estimate from its own events (each fold is a training
    run of the same length), plus the folds still to come at the pace this fold has shown so far.
    The prediction of each held-out fold is not in it (timed when it runs)."""
    events = [e for e in progress if e.get("fold") == fold]
    estimate = estimate_eta({**job, "phase": "training"}, events, now)
    if estimate is None:
        return None
    left, covers = estimate
    later = folds - fold - 1
    if later:
        fold_seconds = (now - float(events[0]["time"])) + left  # this fold from its first event to its end
        left += later * fold_seconds
        covers = f"{covers}, then {later} more fold{'s' if later > 1 else ''} at this fold's pace"
    return left, covers


def eta_seconds(job: dict[str, Any], progress: list[ProgressEvent], now: float | None = None) -> float | None:
    """Seconds left in the running phase (see :func:`estimate_eta`); None until there is data."""
    estimate = estimate_eta(job, progress, now)
    return None if estimate is None else estimate[0]


def predict_progress(progress: list[ProgressEvent]) -> tuple[int, int] | None:
    """(images done, images in all) of the prediction on the val dataset; None before it started."""
    events: list[PredictEvent] = events_of(progress, "predict")
    if not events:
        return None
    return int(events[-1]["done"]), int(events[-1]["total"])
