"""Starting a job's process and stopping it: create the job folder, launch its runner in a session
of its own (it survives page reloads and a closed browser), queue runners on the GPU lock, cancel;
and the background prediction with the best checkpoint of a job that did not finish.

Jobs queue on an fcntl lock (PROJECT/jobs/.gpu.lock) instead of sharing one accelerator. This module
imports no torch at load time (pages import it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from models.config import ConfigError, TrainConfig, load_config
from models.devices import check_device
from models.job_state import (
    ACTIVE,
    CANCEL_FILE,
    CHECKPOINT_FILE,
    JOB_FILE,
    LOG_FILE,
    best_checkpoint,
    job_lock,
    list_jobs,
    log_tail,
    new_job_id,
    process_alive,
    process_start_time,
    read_job,
    read_raw,
    update_job,
    write_new_job,
)
from store.errors import InputError
from store.project import Project, check_name, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_LOCK_FILE = ".gpu.lock"
LOCK_POLL_S = 0.5
PREDICT_LOG_FILE = "predict.log"
ProjectLike = str | Path | Project  # a project folder, or the Project itself


def config_error_to_input(error: ConfigError) -> InputError:
    """The CLI's one-line error (exit 2) for a bad config value."""
    message = str(error)
    if error.file:
        message = message.removeprefix(f"{error.file}: ")
    message = message.removeprefix(f"field '{error.field}': ")
    return InputError(error.file or "config", message, field=error.field)


def prepare_config(config_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults ← TOML file ← overrides, as a validated TrainConfig; bad values raise InputError.

    config_path: None uses the defaults only; overrides: TrainConfig field → value.
    """
    if config_path is not None and not Path(config_path).is_file():
        raise InputError(str(config_path), "no such config file", field="--config")
    try:
        return load_config(config_path, **overrides)
    except ConfigError as error:
        raise config_error_to_input(error) from None


def _check_datasets(project: Project, train: str, val: str) -> None:
    from models.frames import require_dataset, require_project

    require_project(project)
    require_dataset(project, train, "--train")
    require_dataset(project, val, "--val")


# ----- creating, starting and cancelling --------------------------------------------------------


def create_job(
    project: ProjectLike,
    train: str,
    val: str,
    config: TrainConfig,
    name: str | None = None,
    config_file: str | Path | None = None,
) -> Path:
    """A queued job folder with its job.json; nothing runs yet (launch starts it).

    train / val: dataset names of the project; name: the model the job imports (None: train-JOB_ID;
    a --folds job gets the -oofK suffix); config_file: named in the error of a bad device or weights.
    Bad input (unknown dataset, taken model name, CUDA asked for without it) raises InputError.
    """
    project = project if isinstance(project, Project) else Project(project)
    _check_datasets(project, train, val)
    check_device(config.device, str(config_file or "config"))
    if config.weights:
        from models.pretrained import check_weights

        check_weights(config.weights, config.model, str(config_file or "config"))
    job_id = new_job_id()
    model = check_name("model", name) if name else f"train-{job_id}"
    if config.folds >= 2:  # the imported model is the union of K out-of-fold models: say so
        from models.folds import oof_model_name

        model = check_name("model", oof_model_name(model, config.folds))
    taken = set(project.models()) | {j.get("name") for j in list_jobs(project) if j["status"] in ACTIVE}
    if model in taken:
        raise InputError(
            str(project.root),
            f"a model or running job is already named {model!r}: pick another name (or none for train-<job id>)",
            field="name",
        )
    folder = project.jobs_dir / job_id
    write_new_job(folder, job_id, project, name=model, train=train, val=val, config=config.to_dict())
    return folder


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """``python ARGS`` from the repository root in a session of its own (it survives the app), its
    output appended to ``log_path``, unbuffered so that the log follows it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, *args],  # argument list: no shell
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def launch(job_dir: str | Path, runner: str = "models.job_runner") -> int:
    """Start the runner for a created job in its own session (survives the app); returns its pid.

    ``runner`` is the module run as ``python -m RUNNER JOB_DIR`` (models.action_runner for page actions)."""
    job_dir = Path(job_dir).resolve()
    process = spawn(["-m", runner, str(job_dir)], job_dir / LOG_FILE)
    with job_lock(job_dir):
        job = read_raw(job_dir)
        if not job.get("pid"):  # the runner may already have written its own (same) pid
            job["pid"] = process.pid
            job["pid_start"] = process_start_time(process.pid)
            write_json_atomic(job_dir / JOB_FILE, job)
    return process.pid


def start_job(
    project: ProjectLike, train: str, val: str, config: TrainConfig, name: str | None = None
) -> str:
    """Create a job (see create_job for the parameters) and start its background process; returns the
    job id. The call returns at once: the job queues on the GPU lock and trains in its own session."""
    folder = create_job(project, train, val, config, name)
    launch(folder)
    return folder.name


def cancel_job(job_dir: str | Path) -> dict[str, Any]:
    """Ask a job (training or page action) to stop: a flag file the runner polls; a reader of the job
    sends SIGTERM once CANCEL_GRACE_S have passed. Returns job.json; an ended job is left as it is."""
    job_dir = Path(job_dir)
    job = read_job(job_dir)
    if job["status"] not in ACTIVE:
        return job
    (job_dir / CANCEL_FILE).touch()
    return update_job(job_dir, cancel_requested_at=time.time())


# ----- the best checkpoint of a job that did not finish ------------------------------------------


def predict_argv(job: dict[str, Any], dataset: str, model: str) -> list[str]:
    """`cocolens predict` on the job's best checkpoint (what the Training page runs, and shows)."""
    checkpoint = Path(job["dir"]) / CHECKPOINT_FILE
    return ["predict", "--project", str(job["project"]), "--checkpoint", str(checkpoint),
            "--dataset", dataset, "--model", model]  # fmt: skip


def start_predict(job: dict[str, Any], dataset: str, model: str) -> int:
    """Predict with a job's best checkpoint and import the results as ``model``, in a background process
    of its own session (like a training job: closing the browser does not stop it); returns its pid.

    job: a listed job (with 'dir' and 'project'); dataset: the project's dataset to predict on. A job
    without a checkpoint, or a model name already taken, raises InputError. predict_state follows it.
    """
    job_dir = Path(job["dir"])
    if best_checkpoint(job_dir) is None:
        raise InputError(
            str(job_dir), "this job has no checkpoint (no epoch was evaluated)", field="checkpoint"
        )
    check_name("model", model)
    if model in Project(job["project"]).models():
        raise InputError(
            str(job["project"]), f"a model is already named {model!r}: pick another", field="model"
        )
    process = spawn(["-m", "cli", *predict_argv(job, dataset, model)], job_dir / PREDICT_LOG_FILE)
    update_job(
        job_dir,
        predict={
            "pid": process.pid,
            "pid_start": process_start_time(process.pid),
            "dataset": dataset,
            "model": model,
            "started_at": time.time(),
        },  # fmt: skip
    )
    return process.pid


def predict_state(job: dict[str, Any]) -> dict[str, Any] | None:
    """The background prediction of a job's checkpoint (start_predict): its 'model', 'dataset', 'pid',
    'started_at' (Unix seconds), 'log' (the last 5 lines of predict.log) and 'status': 'running',
    'imported' (the model exists) or 'failed'; None when none was started for this job."""
    info = job.get("predict")
    if not info:
        return None
    state = {**info, "log": log_tail(job["dir"], 5, PREDICT_LOG_FILE)}
    if process_alive(info.get("pid"), info.get("pid_start")):
        return {**state, "status": "running"}
    if info["model"] in Project(job["project"]).models():
        return {**state, "status": "imported"}
    return {**state, "status": "failed"}


# ----- queueing (inside the runner process) ------------------------------------------------------


@contextlib.contextmanager
def gpu_lock(
    project: Project, should_stop: Callable[[], bool], on_wait: Callable[[], None] | None = None
) -> Iterator[bool]:
    """Hold PROJECT/jobs/.gpu.lock (one training at a time); yields False if cancelled while waiting."""
    project.jobs_dir.mkdir(parents=True, exist_ok=True)
    with open(project.jobs_dir / GPU_LOCK_FILE, "a+") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if should_stop():
                    yield False
                    return
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                time.sleep(LOCK_POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
