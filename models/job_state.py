"""A job's folder as the shared record between the app, the launcher and the runner process.

A job (training, or a page action one level down) is a folder that any process can read while the
job writes it:

    job.json        status (queued/running/succeeded/failed/cancelled), config, pid, times, error
    progress.jsonl  one JSON line per progress event, appended (the app tails it)
    log.txt         the runner's stdout/stderr and log lines
    best.pt         the best checkpoint (models.train.fit)
    predictions.json  COCO results of the best checkpoint on the val dataset
    cancel          present when a cancel was asked for (polled between training steps)

This module only reads and writes those files (and asks the kernel whether a job's process is still
alive): it imports no torch, so the app lists jobs without paying for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from models.progress_events import ProgressEvent
from store.errors import InputError
from store.project import Project, write_json_atomic

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel"
CHECKPOINT_FILE = "best.pt"
RESULTS_FILE = "predictions.json"
ACTIVE = ("queued", "running")
# After a cancel, the runner gets this long to stop at a step boundary before it is sent SIGTERM.
CANCEL_GRACE_S = 20.0
# A job with no pid this long after creation never got a process (the launch itself failed).
LAUNCH_TIMEOUT_S = 120.0
JOB_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")


class JobCancelled(Exception):
    """Raised in the runner when a cancel was asked for (flag file or SIGTERM)."""


def raise_cancelled(_signum: int, _frame: Any) -> None:
    """SIGTERM handler of the runners: the cancel fallback ends the job as 'cancelled', not killed."""
    raise JobCancelled()


def new_job_id() -> str:
    """Sortable by creation time, unique enough for one project: 20250101-120000-ab12."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def job_path(project: Project, job_id: str) -> Path:
    """The folder of job `job_id` (ids are checked: they come from URLs)."""
    if not JOB_ID_RE.match(job_id):
        raise InputError(str(project.root), f"{job_id!r} is not a job id", field="job")
    return project.jobs_dir / job_id


def write_new_job(folder: Path, job_id: str, project: Project, **fields: Any) -> None:
    """Create ``folder`` with a queued job.json (the common fields plus ``fields``) and empty progress
    and log files; what both training jobs and page actions start from."""
    folder.mkdir(parents=True, exist_ok=False)
    write_json_atomic(
        folder / JOB_FILE,
        {
            "id": job_id,
            **fields,
            "project": str(project.root),
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


@contextlib.contextmanager
def job_lock(job_dir: Path) -> Iterator[None]:
    """Serialises read-modify-write of job.json between the app, the launcher and the runner."""
    with open(job_dir / ".job.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_raw(job_dir: Path) -> dict[str, Any]:
    """job.json as written, without checking that its process still runs."""
    return json.loads((Path(job_dir) / JOB_FILE).read_text())


def update_job(job_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into job.json atomically (readers see the old or the new file, never a torn one)."""
    job_dir = Path(job_dir)
    with job_lock(job_dir):
        job = read_raw(job_dir)
        job.update(changes)
        write_json_atomic(job_dir / JOB_FILE, job)
    return job


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


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot); None where /proc is absent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int | None, start_time: str | None = None) -> bool:
    """Whether `pid` still runs (not a zombie) and, when `start_time` is known, is the same process.

    pid: None or 0 means no process was recorded (False). start_time: process_start_time() of the
    process when it was recorded; None skips the check. It guards against a recycled pid: a job must
    never look alive because some other process got its number.
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
    with job_lock(job_dir):
        fresh = read_raw(job_dir)
        if fresh.get("status") not in ACTIVE or fresh.get("pid") != pid:
            return fresh  # the runner wrote its own ending meanwhile
        fresh.update(
            changes, phase=changes["status"], ended_at=time.time()
        )  # no "running" phase on an ended job
        write_json_atomic(job_dir / JOB_FILE, fresh)
        return fresh


def read_job(job_dir: str | Path) -> dict[str, Any]:
    """job.json, with a vanished process reported as failed ('process died') or cancelled.

    job_dir: the job's folder (training or page action). Raises OSError or ValueError when job.json
    is missing or unreadable.
    """
    job_dir = Path(job_dir)
    return _reconcile(job_dir, read_raw(job_dir))


def list_job_folders(folder: Path) -> list[dict[str, Any]]:
    """read_job of every job folder in ``folder`` (named by new_job_id, with a job.json), newest first,
    each with its folder under 'dir'; unreadable ones are left out."""
    if not folder.is_dir():
        return []
    found = []
    for job_dir in sorted(folder.iterdir(), reverse=True):
        if JOB_ID_RE.match(job_dir.name) and (job_dir / JOB_FILE).is_file():
            with contextlib.suppress(OSError, ValueError):
                found.append({**read_job(job_dir), "dir": str(job_dir)})
    return found


def list_jobs(project: Project) -> list[dict[str, Any]]:
    """Every training job of the project, newest first, each with its job folder under 'dir'."""
    return list_job_folders(project.jobs_dir)


def append_progress(job_dir: str | Path, event: Mapping[str, Any]) -> None:
    """One JSON line per event, stamped with 'time' (Unix seconds) unless it has one; a single write
    of one line, so a reader sees whole lines or none."""
    line = json.dumps({"time": time.time(), **event}, default=float) + "\n"
    with open(Path(job_dir) / PROGRESS_FILE, "a") as handle:
        handle.write(line)
        handle.flush()


def read_progress(job_dir: str | Path) -> list[ProgressEvent]:
    """All complete progress lines so far, oldest first (a line still being written is skipped);
    [] when the job has no progress file."""
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
    """The last `lines` non-blank lines of the job's log.txt (or of its log `name`); reads at most the
    last 64 KiB; "" when the log does not exist."""
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


def best_checkpoint(job_dir: str | Path) -> Path | None:
    """The job's best checkpoint so far (kept when it was cancelled or failed after an evaluation);
    None before any epoch was evaluated."""
    path = Path(job_dir) / CHECKPOINT_FILE
    return path if path.is_file() else None
