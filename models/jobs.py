"""Training jobs: train → best checkpoint → predictions on the val dataset → imported as a model.

The code lives by concern: models.job_state (the job folder: job.json, progress, log, listing),
models.job_eta (time left), models.job_launch (creating, starting, queueing, cancelling),
models.job_run (running a job to its end, and ``cocolens train``), models.devices (cores and
CUDA devices) and models.predict (checkpoint → results file → model, ``cocolens predict``).

This module only keeps the names that modules of other owners still import from here (cli.py,
models/folds.py, models/image_folder.py, pages/training_form.py and tests/reliability); new code
imports from the modules above. Like them, it imports no torch at load time: the prediction names
come from models.predict on first use.
"""

from __future__ import annotations

from typing import Any

from models.devices import available_cores, available_devices
from models.job_launch import prepare_config, start_job
from models.job_run import steps_per_epoch, train_foreground
from models.job_state import (
    ACTIVE,
    JOB_FILE,
    LOG_FILE,
    RESULTS_FILE,
    JobCancelled,
    append_progress,
    job_path,
    process_alive,
    read_job,
    read_progress,
    update_job,
)

__all__ = [
    "ACTIVE",
    "JOB_FILE",
    "LOG_FILE",
    "RESULTS_FILE",
    "JobCancelled",
    "append_progress",
    "available_cores",
    "available_devices",
    "job_path",
    "prepare_config",
    "process_alive",
    "read_job",
    "read_progress",
    "start_job",
    "steps_per_epoch",
    "train_foreground",
    "update_job",
]
_FROM_PREDICT = ("load_checkpoint_checked", "predict_and_import", "predict_to_file")


def __getattr__(name: str) -> Any:
    """The names of models.predict, imported (with torch) only when one is asked for."""
    if name in _FROM_PREDICT:
        from models import predict

        return getattr(predict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
