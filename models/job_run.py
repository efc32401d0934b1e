"""Running a training job to its end: wait for the GPU lock, train, predict the val dataset with the
best checkpoint, import the predictions as a model, re-score the labels; every step recorded in the
job folder (models.job_state). Runs inside the runner process (models.job_runner) or, for
``cocolens train``, in the foreground with progress on the terminal.

The project's write lock is only taken by the final import, for seconds, never for the hours of
training. Torch is imported only once a job runs.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.config import TrainConfig
from models.devices import check_device, fit_workers
from models.job_launch import create_job, gpu_lock, prepare_config
from models.job_printer import report_event
from models.job_state import (
    CANCEL_FILE,
    LOG_FILE,
    RESULTS_FILE,
    JobCancelled,
    append_progress,
    mark_failed,
    process_start_time,
    raise_cancelled,
    update_job,
)
from models.progress_events import PredictEvent, ProgressEvent
from store.project import Project


def steps_per_epoch(images_ok: int, config: TrainConfig) -> int:
    """Training steps in one epoch over ``images_ok`` usable images (overfit_images caps them)."""
    count = min(images_ok, config.overfit_images) if config.overfit_images else images_ok
    return max(1, math.ceil(count / config.batch_size))


def event_recorder(
    job_dir: Path,
    per_epoch: int,
    on_event: Callable[[dict[str, Any]], None],
    extra: dict[str, Any] | None = None,
) -> Callable[[ProgressEvent], None]:
    """The on_progress callback of models.train.fit in a job: stamps step events with 'global_step'
    (so the ETA and the bars count across epochs), appends each event to progress.jsonl and passes
    it on to on_event with 'steps_per_epoch'.

    extra: fields every event gets (a ``--folds K`` job: {'fold': i, 'folds': K}).
    """

    def on_progress(event: ProgressEvent) -> None:
        event = {**event, **(extra or {})}
        if event.get("event") == "step":
            event["global_step"] = (int(event["epoch"]) - 1) * per_epoch + int(event["step"])
        append_progress(job_dir, event)
        on_event({**event, "steps_per_epoch": per_epoch})

    return on_progress


def _summary_of(fit_summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fit_summary.items() if k != "history"}


def run_job(job_dir: str | Path, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run a created job to its end and record it in job.json; returns the final job.json.

    on_event: called with each progress event as it is written to progress.jsonl, plus
    'steps_per_epoch' on training events (the printers need it); None prints nothing.

    Used by the background runner and by `cocolens train`. Cancel (flag file or SIGTERM turned
    into JobCancelled) ends as 'cancelled'; any exception ends as 'failed' with its traceback and
    is re-raised so the caller can report it.
    """
    job_dir = Path(job_dir).resolve()
    job = update_job(job_dir, pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    project = Project(job["project"])
    cancel_flag = job_dir / CANCEL_FILE

    def should_stop() -> bool:
        return cancel_flag.exists()

    try:
        with gpu_lock(
            project, should_stop, lambda: update_job(job_dir, phase="waiting for another job to finish")
        ) as acquired:
            if not acquired:
                raise JobCancelled()
            update_job(job_dir, status="running", phase="loading data", started_at=time.time())
            trained = _train_and_predict(job_dir, job, project, should_stop, on_event or (lambda _e: None))
        update_job(job_dir, phase="importing predictions")
        from store.predictions_import import import_predictions

        dataset = trained.get("dataset", job["val"])  # out-of-fold: the train dataset
        imported = import_predictions(
            trained["results"],
            project.root,
            model=job["name"],
            dataset=dataset,
            source={"job": job["id"], "checkpoint": trained["checkpoint"]},
        )
        append_progress(job_dir, {"event": "imported", **imported})
        update_job(job_dir, phase="checking the labels with the new model")
        from store.label_issues import rescore_after_model

        imported["label_issues"] = rescore_after_model(project.root, dataset)
        return update_job(
            job_dir,
            status="succeeded",
            phase="done",
            ended_at=time.time(),
            model=job["name"],
            imported=imported,
        )
    except JobCancelled:
        return update_job(job_dir, status="cancelled", phase="cancelled", ended_at=time.time())
    except KeyboardInterrupt:
        update_job(job_dir, status="cancelled", phase="interrupted", ended_at=time.time())
        raise
    except BaseException as error:
        mark_failed(job_dir, error)
        raise


def _train_and_predict(
    job_dir: Path,
    job: dict[str, Any],
    project: Project,
    should_stop: Callable[[], bool],
    on_event: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Train (K folds when config.folds >= 2) and predict; {'checkpoint', 'results'[, 'dataset']}."""
    from models.config import from_dict
    from models.frames import dataset_frames, usable_images
    from models.predict import predict_to_file
    from models.train import fit

    config = from_dict(job["config"])
    check_device(config.device)
    config = fit_workers(config)
    train = dataset_frames(project, job["train"], "--train")
    val = dataset_frames(project, job["val"], "--val")
    if config.folds >= 2:
        from models.folds import train_out_of_fold

        same = job["val"] == job["train"]
        return train_out_of_fold(job_dir, job, config, train, None if same else val, should_stop, on_event)
    per_epoch = steps_per_epoch(usable_images(train), config)
    update_job(job_dir, phase="training", steps_per_epoch=per_epoch)
    on_progress = event_recorder(job_dir, per_epoch, on_event)
    summary = fit(config, train, val, job_dir, on_progress=on_progress, should_stop=should_stop)
    update_job(job_dir, summary=_summary_of(summary))
    if summary["stopped"] or should_stop():
        raise JobCancelled()
    if not summary["checkpoint"]:
        raise RuntimeError("training ended without a checkpoint (no epoch was evaluated)")
    update_job(job_dir, phase="predicting on the val dataset", checkpoint=summary["checkpoint"])

    def on_predict(done: int, total: int) -> None:
        event: PredictEvent = {"event": "predict", "done": done, "total": total}
        append_progress(job_dir, event)
        on_event(event)

    results_path = job_dir / RESULTS_FILE
    count = predict_to_file(
        summary["checkpoint"],
        val.images,
        results_path,
        device=config.device,
        score_threshold=config.score_threshold,
        batch_size=max(1, min(config.batch_size, 4)),
        progress=on_predict,
    )
    if count == 0:
        raise RuntimeError(
            f"the best checkpoint made no prediction with score >= {config.score_threshold} on "
            f"dataset {job['val']!r}: nothing to import (train longer or lower score_threshold)"
        )
    update_job(job_dir, predictions=count, predictions_file=str(results_path))
    return {"checkpoint": summary["checkpoint"], "results": results_path}


def train_foreground(
    project: str | Path | Project,
    train: str,
    val: str,
    config_path: str | Path | None = None,
    name: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """`cocolens train`: the same job as the app's, run in this process with its progress on stderr
    (store.progress_report: bars on a terminal, a line now and then in a log).

    config_path: a TOML config (None: the defaults); name: the model to import (None: train-JOB_ID);
    overrides: config keys that win over the file.

    The job folder is created like a background job's, so the Training page lists it too.
    Returns a summary: job id, model name, checkpoint, best epoch and val stats, imported stats.
    """
    project = project if isinstance(project, Project) else Project(project)
    config = prepare_config(config_path, **overrides)
    folder = create_job(project, train, val, config, name, config_path)
    handler = logging.FileHandler(folder / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    from store.progress_report import ProgressReport

    report = ProgressReport()
    previous = signal.signal(signal.SIGTERM, raise_cancelled)
    try:
        print(f"cocolens: job {folder.name} in {folder}", file=sys.stderr)
        job = run_job(folder, lambda event: report_event(report, event, config.epochs))
    finally:
        signal.signal(signal.SIGTERM, previous)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()
    return {
        "job": job["id"],
        "status": job["status"],
        "model": job.get("model"),
        "checkpoint": job.get("checkpoint"),
        "best_epoch": (job.get("summary") or {}).get("best_epoch"),
        "best_val": (job.get("summary") or {}).get("best_val"),
        "imported": job.get("imported"),
    }
