"""Training jobs: train → best checkpoint → predictions on the val dataset → imported as a model.

A job is a folder PROJECT/jobs/JOB_ID/ that any process can read while the job writes it:

    job.json        status (queued/running/succeeded/failed/cancelled), config, pid, times, error
    progress.jsonl  one JSON line per progress event, appended (the app tails it)
    log.txt         the runner's stdout/stderr and log lines
    best.pt         the best checkpoint (models.train.fit)
    predictions.json  COCO results of the best checkpoint on the val dataset
    cancel          present when a cancel was asked for (polled between training steps)

The job runs in its own process (`python -m models.job_runner JOB_DIR`, a new session) so it
survives page reloads and a closed browser. Jobs queue on an fcntl lock (PROJECT/jobs/.gpu.lock)
instead of sharing one accelerator. The project's write lock is only taken by the final import,
for seconds, never for the hours of training. This module imports no torch at load time: the app
lists jobs without paying for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import pickle
import re
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from models.config import ConfigError, TrainConfig, load_config
from store.errors import InputError
from store.project import Project, check_name, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_FILE = "job.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel"
CHECKPOINT_FILE = "best.pt"
RESULTS_FILE = "predictions.json"
GPU_LOCK_FILE = ".gpu.lock"
ACTIVE = ("queued", "running")
# After a cancel, the runner gets this long to stop at a step boundary before it is sent SIGTERM.
CANCEL_GRACE_S = 20.0
# A job with no pid this long after creation never got a process (the launch itself failed).
LAUNCH_TIMEOUT_S = 120.0
LOCK_POLL_S = 0.5
_JOB_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")


class JobCancelled(Exception):
    """Raised in the runner when a cancel was asked for (flag file or SIGTERM)."""


# ----- job folders ------------------------------------------------------------------------------


def new_job_id() -> str:
    """Sortable by creation time, unique enough for one project: 20250101-120000-ab12."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def job_path(project: Project, job_id: str) -> Path:
    """The folder of job `job_id` (ids are checked: they come from URLs)."""
    if not _JOB_ID_RE.match(job_id):
        raise InputError(str(project.root), f"{job_id!r} is not a job id", field="job")
    return project.jobs_dir / job_id


@contextlib.contextmanager
def _job_lock(job_dir: Path) -> Iterator[None]:
    """Serialises read-modify-write of job.json between the app, the launcher and the runner."""
    with open(job_dir / ".job.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_raw(job_dir: Path) -> dict[str, Any]:
    return json.loads((Path(job_dir) / JOB_FILE).read_text())


def update_job(job_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into job.json atomically (readers see the old or the new file, never a torn one)."""
    job_dir = Path(job_dir)
    with _job_lock(job_dir):
        job = _read_raw(job_dir)
        job.update(changes)
        write_json_atomic(job_dir / JOB_FILE, job)
    return job


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot); None where /proc is absent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int | None, start_time: str | None = None) -> bool:
    """Whether `pid` still runs (not a zombie) and, when `start_time` is known, is the same process.

    The start time guards against a recycled pid: a job must never look alive because some other
    process got its number.
    """
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our finished child (the app launched it)
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        return fields[0] not in ("Z", "X") and (start_time is None or fields[19] == start_time)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reconcile(job_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Turn a job whose process vanished into failed ('process died') or cancelled; nudge slow cancels."""
    if job.get("status") not in ACTIVE:
        return job
    pid = job.get("pid")
    cancel_asked = (job_dir / CANCEL_FILE).exists()
    if not pid:
        if time.time() - float(job.get("created_at", 0)) < LAUNCH_TIMEOUT_S:
            return job
        changes: dict[str, Any] = {"status": "failed", "error": "the job process never started"}
    elif process_alive(pid, job.get("pid_start")):
        asked_at = job.get("cancel_requested_at")
        if cancel_asked and asked_at and time.time() - float(asked_at) > CANCEL_GRACE_S:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)  # the runner turns SIGTERM into a clean 'cancelled'
        return job
    elif cancel_asked:
        changes = {"status": "cancelled"}
    else:
        changes = {
            "status": "failed",
            "error": f"process died (pid {pid} ended without reporting; killed or out of memory?)",
        }
    with _job_lock(job_dir):
        fresh = _read_raw(job_dir)
        if fresh.get("status") not in ACTIVE or fresh.get("pid") != pid:
            return fresh  # the runner wrote its own ending meanwhile
        fresh.update(
            changes, phase=changes["status"], ended_at=time.time()
        )  # no "running" phase on an ended job
        write_json_atomic(job_dir / JOB_FILE, fresh)
        return fresh


def read_job(job_dir: str | Path) -> dict[str, Any]:
    """job.json, with a vanished process reported as failed ('process died') or cancelled."""
    job_dir = Path(job_dir)
    return _reconcile(job_dir, _read_raw(job_dir))


def list_jobs(project: Project) -> list[dict[str, Any]]:
    """Every job of the project, newest first, each with its job folder under 'dir'."""
    if not project.jobs_dir.is_dir():
        return []
    jobs = []
    for folder in sorted(project.jobs_dir.iterdir(), reverse=True):
        if _JOB_ID_RE.match(folder.name) and (folder / JOB_FILE).is_file():
            with contextlib.suppress(OSError, ValueError):
                jobs.append({**read_job(folder), "dir": str(folder)})
    return jobs


def append_progress(job_dir: str | Path, event: dict[str, Any]) -> None:
    """One JSON line per event; a single write of one line, so a reader sees whole lines or none."""
    line = json.dumps({"time": time.time(), **event}, default=float) + "\n"
    with open(Path(job_dir) / PROGRESS_FILE, "a") as handle:
        handle.write(line)
        handle.flush()


def read_progress(job_dir: str | Path) -> list[dict[str, Any]]:
    """All complete progress lines so far (a line still being written is skipped)."""
    path = Path(job_dir) / PROGRESS_FILE
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def log_tail(job_dir: str | Path, lines: int = 40, name: str = LOG_FILE) -> str:
    """The last `lines` lines of the job's log.txt (or another of its logs; reads at most the last 64 KiB)."""
    path = Path(job_dir) / name
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        text = handle.read().decode(errors="replace")
    text = text.replace("\r", "\n")  # tqdm redraws
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


# An ETA is shown only once this many timed intervals exist (between logged training steps, whole
# epochs when an epoch is shorter than the log interval, or prediction batches): one interval is noise.
MIN_ETA_INTERVALS = 2


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, as PyTorch's DataLoader checks it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _nvidia_present() -> bool:
    """An NVIDIA device node or driver entry exists (checked before paying for importing torch)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or any(Path("/dev").glob("nvidia[0-9]*"))


@functools.lru_cache(maxsize=1)
def available_devices() -> tuple[str, ...]:
    """The devices a training can use here: auto and cpu, and cuda (cuda:N each when several) only when
    torch sees a CUDA device. Without an NVIDIA driver, torch is not even imported (the app stays quick)."""
    devices = ["auto", "cpu"]
    if not _nvidia_present():
        return tuple(devices)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        devices.append("cuda")
    if count > 1:
        devices += [f"cuda:{i}" for i in range(count)]
    return tuple(devices)


def fit_workers(config: TrainConfig) -> TrainConfig:
    """The config with at most one data-loader worker per available core (more only adds contention,
    and PyTorch warns about it); says so in the job log when it lowers the number."""
    cores = available_cores()
    if config.workers < 0:  # -1: one per available core
        return config.replace(workers=cores)
    if config.workers <= cores:
        return config
    logging.getLogger("cocolens.job").info(
        "data loader workers: %d asked for, %d cores available: using %d", config.workers, cores, cores
    )
    return config.replace(workers=cores)


def _step_number(event: dict[str, Any], per_epoch: int) -> int:
    return int(event.get("global_step") or (int(event["epoch"]) - 1) * per_epoch + int(event["step"]))


def estimate_eta(
    job: dict[str, Any], progress: list[dict[str, Any]], now: float | None = None
) -> tuple[float, str] | None:
    """(seconds left in the running phase, what the estimate covers), or None until there is data.

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
        events = [e for e in progress if e.get("event") == "predict"]
        if len(events) < MIN_ETA_INTERVALS or int(events[-1]["done"]) <= int(events[0]["done"]):
            return None
        first, last = events[0], events[-1]
        per_item = (float(last["time"]) - float(first["time"])) / (int(last["done"]) - int(first["done"]))
        left = (int(last["total"]) - int(last["done"])) * per_item - (now - float(last["time"]))
        return max(0.0, left), "prediction on the val dataset"
    fold = _FOLD_PHASE.fullmatch(phase)
    if fold:
        return _fold_eta(job, progress, int(fold.group(1)) - 1, int(fold.group(2)), now)
    if phase != "training":
        return None
    config = job.get("config") or {}
    epochs = int(config.get("epochs") or 0)
    eval_every = max(1, int(config.get("eval_every") or 1))
    per_epoch = int(job.get("steps_per_epoch") or 0)
    steps = [e for e in progress if e.get("event") == "step"]
    finished = [e for e in progress if e.get("event") == "epoch"]
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
    job: dict[str, Any], progress: list[dict[str, Any]], fold: int, folds: int, now: float
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


def eta_seconds(
    job: dict[str, Any], progress: list[dict[str, Any]], now: float | None = None
) -> float | None:
    """Seconds left in the running phase (see :func:`estimate_eta`); None until there is data."""
    estimate = estimate_eta(job, progress, now)
    return None if estimate is None else estimate[0]


def predict_progress(progress: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(images done, images in all) of the prediction on the val dataset, once it has started."""
    events = [e for e in progress if e.get("event") == "predict"]
    if not events:
        return None
    return int(events[-1]["done"]), int(events[-1]["total"])


# ----- config and input checks ------------------------------------------------------------------


def config_error_to_input(error: ConfigError) -> InputError:
    """The CLI's one-line error (exit 2) for a bad config value."""
    message = str(error)
    if error.file:
        message = message.removeprefix(f"{error.file}: ")
    message = message.removeprefix(f"field '{error.field}': ")
    return InputError(error.file or "config", message, field=error.field)


def prepare_config(config_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults ← TOML file ← overrides, as a validated TrainConfig; bad values raise InputError."""
    if config_path is not None and not Path(config_path).is_file():
        raise InputError(str(config_path), "no such config file", field="--config")
    try:
        return load_config(config_path, **overrides)
    except ConfigError as error:
        raise config_error_to_input(error) from None


def check_device(device: str, where: str = "config") -> None:
    """One line instead of a CUDA stack trace when CUDA is asked for on a machine without it."""
    if device == "cpu" or device == "auto":
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            where,
            f"device {device!r} asked for but CUDA is not available here; use 'auto' or 'cpu'",
            field="device",
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise InputError(
            where, f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)", field="device"
        )


def _check_datasets(project: Project, train: str, val: str) -> None:
    from models.frames import require_dataset, require_project

    require_project(project)
    require_dataset(project, train, "--train")
    require_dataset(project, val, "--val")


# ----- creating, starting and cancelling --------------------------------------------------------


def create_job(
    project: str | Path | Project,
    train: str,
    val: str,
    config: TrainConfig,
    name: str | None = None,
    config_file: str | Path | None = None,
) -> Path:
    """A queued job folder with its job.json; nothing runs yet. Bad input raises InputError."""
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
    folder.mkdir(parents=True, exist_ok=False)
    write_json_atomic(
        folder / JOB_FILE,
        {
            "id": job_id,
            "name": model,
            "project": str(project.root),
            "train": train,
            "val": val,
            "config": config.to_dict(),
            "status": "queued",
            "phase": "waiting to start",
            "created_at": time.time(),
            "started_at": None,
            "ended_at": None,
            "pid": None,
            "error": None,
        },
    )
    (folder / PROGRESS_FILE).touch()
    (folder / LOG_FILE).touch()
    return folder


def launch(job_dir: str | Path, runner: str = "models.job_runner") -> int:
    """Start the runner for a created job in its own session (survives the app); returns its pid.

    ``runner`` is the module run as ``python -m RUNNER JOB_DIR`` (models.action_runner for page actions)."""
    job_dir = Path(job_dir).resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(job_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", runner, str(job_dir)],  # argument list: no shell
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    with _job_lock(job_dir):
        job = _read_raw(job_dir)
        if not job.get("pid"):  # the runner may already have written its own (same) pid
            job["pid"] = process.pid
            job["pid_start"] = process_start_time(process.pid)
            write_json_atomic(job_dir / JOB_FILE, job)
    return process.pid


def start_job(
    project: str | Path | Project,
    train: str,
    val: str,
    config: TrainConfig,
    name: str | None = None,
) -> str:
    """Create a job and start its background process; returns the job id."""
    folder = create_job(project, train, val, config, name)
    launch(folder)
    return folder.name


def cancel_job(job_dir: str | Path) -> dict[str, Any]:
    """Ask a job to stop: a flag file the runner polls; SIGTERM follows after CANCEL_GRACE_S."""
    job_dir = Path(job_dir)
    job = read_job(job_dir)
    if job["status"] not in ACTIVE:
        return job
    (job_dir / CANCEL_FILE).touch()
    return update_job(job_dir, cancel_requested_at=time.time())


# ----- using the best checkpoint of a job that did not finish ----------------------------------------

PREDICT_LOG_FILE = "predict.log"


def best_checkpoint(job_dir: str | Path) -> Path | None:
    """The job's best checkpoint so far (kept when it was cancelled or failed after an evaluation)."""
    path = Path(job_dir) / CHECKPOINT_FILE
    return path if path.is_file() else None


def predict_argv(job: dict[str, Any], dataset: str, model: str) -> list[str]:
    """`cocolens predict` on the job's best checkpoint (what the Training page runs, and shows)."""
    checkpoint = Path(job["dir"]) / CHECKPOINT_FILE
    return ["predict", "--project", str(job["project"]), "--checkpoint", str(checkpoint),
            "--dataset", dataset, "--model", model]  # fmt: skip


def start_predict(job: dict[str, Any], dataset: str, model: str) -> int:
    """Predict with a job's best checkpoint and import the results as ``model``, in a background process
    of its own session (like a training job: closing the browser does not stop it); returns its pid."""
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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(job_dir / PREDICT_LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", *predict_argv(job, dataset, model)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
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
    """The background prediction of a job's checkpoint: its model, dataset and status (running,
    imported, failed with the log's last line); None when none was started."""
    info = job.get("predict")
    if not info:
        return None
    state = {**info, "log": log_tail(job["dir"], 5, PREDICT_LOG_FILE)}
    if process_alive(info.get("pid"), info.get("pid_start")):
        return {**state, "status": "running"}
    if info["model"] in Project(job["project"]).models():
        return {**state, "status": "imported"}
    return {**state, "status": "failed"}


# ----- running (inside the runner process, or in the foreground) --------------------------------


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


def steps_per_epoch(images_ok: int, config: TrainConfig) -> int:
    count = min(images_ok, config.overfit_images) if config.overfit_images else images_ok
    return max(1, math.ceil(count / config.batch_size))


def _summary_of(fit_summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fit_summary.items() if k != "history"}


def run_job(job_dir: str | Path, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run a created job to its end and record it in job.json; returns the final job.json.

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


def mark_failed(job_dir: Path, error: BaseException) -> dict[str, Any]:
    """End a job (training or page action) as 'failed' with its traceback and a one-line reason;
    call from inside the ``except`` block that caught ``error``."""
    return update_job(
        job_dir,
        status="failed",
        phase="failed",
        ended_at=time.time(),
        error=traceback.format_exc(),
        error_line=" ".join(f"{type(error).__name__}: {error}".split())[:500],
    )


def _train_and_predict(
    job_dir: Path,
    job: dict[str, Any],
    project: Project,
    should_stop: Callable[[], bool],
    on_event: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    from models.config import from_dict
    from models.frames import dataset_frames, usable_images
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

    def on_progress(event: dict[str, Any]) -> None:
        if event.get("event") == "step":
            event = {**event, "global_step": (int(event["epoch"]) - 1) * per_epoch + int(event["step"])}
        append_progress(job_dir, event)
        on_event({**event, "steps_per_epoch": per_epoch})

    summary = fit(config, train, val, job_dir, on_progress=on_progress, should_stop=should_stop)
    update_job(job_dir, summary=_summary_of(summary))
    if summary["stopped"] or should_stop():
        raise JobCancelled()
    if not summary["checkpoint"]:
        raise RuntimeError("training ended without a checkpoint (no epoch was evaluated)")
    update_job(job_dir, phase="predicting on the val dataset", checkpoint=summary["checkpoint"])

    def on_predict(done: int, total: int) -> None:
        event = {"event": "predict", "done": done, "total": total}
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


# ----- inference from any checkpoint ------------------------------------------------------------


def load_checkpoint_checked(checkpoint: str | Path, device: Any):
    """models.predict.load_checkpoint, with a one-line InputError for a missing or foreign file."""
    from models.predict import load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(str(checkpoint), "no such checkpoint file", field="--checkpoint")
    try:
        return load_checkpoint(path, device)
    except Exception as error:  # unpickling refused, wrong keys, wrong shapes: not our checkpoint
        if isinstance(error, pickle.UnpicklingError):
            detail = "torch.load(weights_only=True) refused it: it holds more than tensors and plain data"
        else:
            detail = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        raise InputError(
            str(checkpoint), f"not a cocolens checkpoint ({detail})", field="--checkpoint"
        ) from None


def predict_to_file(
    checkpoint: str | Path,
    images: Any,
    out_file: Path,
    device: str = "auto",
    score_threshold: float | None = None,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    categories: Any = None,
    tile_size: int | None = None,
    tile_overlap: float | None = None,
) -> int:
    """Run a checkpoint on `images` (the store's images table), write COCO results JSON; returns the count.

    Boxes are xywh and masks compressed RLE in the original image frame, category ids the dataset's.
    """
    from models.predict import predict
    from models.train import resolve_device

    check_device(device)
    torch_device = resolve_device(device)
    loaded = load_checkpoint_checked(checkpoint, torch_device)
    if categories is not None:
        known = {int(c) for c in categories["category_id"]}
        missing = sorted(set(loaded.label_to_category.values()) - known)
        if missing:
            raise InputError(
                str(checkpoint),
                f"predicts category ids {missing} that the dataset does not have",
                field="--dataset",
            )
    threshold = loaded.meta["config"]["score_threshold"] if score_threshold is None else score_threshold
    tile = int(loaded.meta["config"].get("tile_size", 0) if tile_size is None else tile_size)
    if tile:  # a checkpoint trained on tiles predicts with them unless told otherwise
        from models.tiles import predict_tiled

        overlap = loaded.meta["config"].get("tile_overlap", 0.2) if tile_overlap is None else tile_overlap
        results = predict_tiled(
            loaded.model,
            images,
            torch_device,
            tile,
            float(overlap),
            score_threshold=float(threshold),
            max_side=int(loaded.meta["image_size"]),
            progress=progress,
            label_to_category=loaded.label_to_category,
        )
        write_json_atomic(out_file, results)
        return len(results)
    results = predict(
        loaded.model,
        images,
        torch_device,
        score_threshold=float(threshold),
        max_side=int(loaded.meta["image_size"]),
        batch_size=batch_size,
        progress=progress,
        label_to_category=loaded.label_to_category,
    )
    write_json_atomic(out_file, results)
    return len(results)


def predict_and_import(
    project: str | Path | Project,
    checkpoint: str | Path,
    dataset: str,
    model: str,
    device: str = "auto",
    score_threshold: float | None = None,
    show_progress: bool = True,
    tile_size: int | None = None,
    tile_overlap: float | None = None,
) -> dict[str, Any]:
    """`cocolens predict`: any checkpoint (loaded with weights_only=True) → results JSON → model `model`.

    The results file stays in PROJECT/jobs/predict/MODEL.json (the import records where it came from).
    """
    from models.frames import dataset_frames, require_project

    project = require_project(project if isinstance(project, Project) else Project(project))
    check_name("model", model)
    frames = dataset_frames(project, dataset)
    results_path = project.jobs_dir / "predict" / f"{model}.json"
    bars = _Bars() if show_progress else None
    count = predict_to_file(
        checkpoint,
        frames.images,
        results_path,
        device=device,
        score_threshold=score_threshold,
        progress=(lambda d, t: bars.update("predict", d, t)) if bars else None,
        categories=frames.categories,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
    )
    if bars:
        bars.close()
    if count == 0:
        raise InputError(
            str(checkpoint),
            f"made no prediction above the score threshold on {dataset!r}",
            field="--checkpoint",
        )
    from store.predictions_import import import_predictions

    summary = import_predictions(
        results_path,
        project.root,
        model=model,
        dataset=dataset,
        source={"checkpoint": str(Path(checkpoint).resolve())},
    )
    from store.label_issues import rescore_after_model

    summary["label_issues"] = rescore_after_model(project.root, dataset)
    return {**summary, "results_file": str(results_path)}


# ----- the foreground command -------------------------------------------------------------------


class _Bars:
    """tqdm bars for the terminal, one per stage (imported lazily: `cocolens --help` stays instant)."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def update(self, stage: str, done: int, total: int, **postfix: Any) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="step", file=sys.stderr, leave=True)
        bar.total = total
        bar.n = min(done, total)
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def _foreground_printer(config: TrainConfig) -> tuple[Callable[[dict[str, Any]], None], _Bars]:
    bars = _Bars()

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            total = config.epochs * int(event["steps_per_epoch"])
            bars.update(
                "train",
                int(event["global_step"]),
                total,
                epoch=event["epoch"],
                loss=f"{event['loss']:.3f}",
                lr=f"{event['lr']:.1e}",
            )
        elif kind == "epoch" and "val" in event:
            val = event["val"]
            bars.update(
                "train",
                int(event["epoch"]) * int(event["steps_per_epoch"]),
                config.epochs * int(event["steps_per_epoch"]),
                epoch=event["epoch"],
                bbox_AP=f"{val['bbox']['AP']:.3f}",
                segm_AP=f"{val['segm']['AP']:.3f}",
            )
        elif kind == "predict":
            bars.update("predict", int(event["done"]), int(event["total"]))

    return on_event, bars


def train_foreground(
    project: str | Path | Project,
    train: str,
    val: str,
    config_path: str | Path | None = None,
    name: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """`cocolens train`: the same job as the app's, run in this process with a progress bar.

    The job folder is created like a background job's, so the Training page lists it too.
    Returns a summary: job id, model name, checkpoint, best epoch and val stats, imported stats.
    """
    import logging

    project = project if isinstance(project, Project) else Project(project)
    config = prepare_config(config_path, **overrides)
    folder = create_job(project, train, val, config, name, config_path)
    handler = logging.FileHandler(folder / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    on_event, bars = _foreground_printer(config)
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        print(f"cocolens: job {folder.name} in {folder}", file=sys.stderr)
        job = run_job(folder, on_event)
    finally:
        bars.close()
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


def _raise_cancelled(_signum: int, _frame: Any) -> None:
    raise JobCancelled()
