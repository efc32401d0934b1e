"""The lines of a job's progress.jsonl, typed: one contract for the writers (models.train.fit, the job
runner, models.actions) and the readers (the ETA in models.job_eta, the Training page's charts, the
action progress bar in pages.job_progress).

Every event is a JSON object with 'event' (which kind) and 'time' (Unix seconds, stamped by
models.job_state.append_progress). Times in '*_s' fields are seconds. A ``--folds K`` job adds
'fold' (0-based) and 'folds' (K) to its training events.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# The progress event of a page action (models.actions).
STAGE_EVENT = "progress"


class StepEvent(TypedDict):
    """A logged training step (every `log_every` steps and the first of each epoch)."""

    event: Literal["step"]
    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    lr: float
    loss: float  # the total; the model's loss components ride along as 'loss_*' keys
    eta_s: float  # fit's own whole-run estimate (the app measures its own: models.job_eta)
    global_step: NotRequired[int]  # added by the job: (epoch - 1) * steps_per_epoch + step
    time: NotRequired[float]
    fold: NotRequired[int]
    folds: NotRequired[int]


class EpochEvent(TypedDict):
    """The end of an epoch; 'val' only when it was evaluated: {iou_type: {stat name: value}}."""

    event: Literal["epoch"]
    epoch: int
    losses: dict[str, float]  # mean of each loss component over the epoch
    lr: float
    val: NotRequired[dict[str, dict[str, float]]]
    epoch_s: float
    eta_s: float
    best_epoch: int  # 0 while no epoch was evaluated
    time: NotRequired[float]
    fold: NotRequired[int]
    folds: NotRequired[int]


class DoneEvent(TypedDict):
    """The end of models.train.fit: its summary without the history."""

    event: Literal["done"]
    checkpoint: str | None  # None when no epoch was evaluated
    best_epoch: int
    best_val: dict[str, dict[str, float]] | None
    epochs_run: int
    stopped: bool
    device: str
    seconds: float
    time: NotRequired[float]
    fold: NotRequired[int]
    folds: NotRequired[int]


class PredictEvent(TypedDict):
    """Prediction of the best checkpoint on the val dataset: images done of total."""

    event: Literal["predict"]
    done: int
    total: int
    time: NotRequired[float]


class ImportedEvent(TypedDict, total=False):
    """The predictions were imported as a model (the import's summary rides along)."""

    event: Literal["imported"]
    time: float


class StageEvent(TypedDict):
    """A page action's progress: items done of total in its current stage."""

    event: Literal["progress"]
    stage: str
    done: int
    total: int
    time: NotRequired[float]


ProgressEvent = StepEvent | EpochEvent | DoneEvent | PredictEvent | ImportedEvent | StageEvent


def events_of(progress: list[ProgressEvent], kind: str) -> list[Any]:
    """The events of one kind ('step', 'epoch', 'predict', 'progress', ...), oldest first."""
    return [e for e in progress if e.get("event") == kind]
