"""Long page actions (computing embeddings, metrics and label-error scores) as background jobs.

A page that ran ``update_metrics`` in its request thread sat behind a spinner for as long as the
work took (47 s for the embeddings of a small dataset), and a reload lost it. An action runs like a
training job instead: a folder PROJECT/jobs/actions/JOB_ID/ with the same files (job.json,
progress.jsonl, log.txt, cancel), written and read with models.job_state, and its own process
(``python -m models.action_runner JOB_DIR``, a new session) that survives reloads and a closed
browser. The page only reads the folder. Actions live one level down from training jobs so that the
Training page, which lists PROJECT/jobs/*, never shows them.

Only the actions named in ACTIONS can run, with options checked against their known keys: job.json
is data, never code to import. This module imports no torch and no Streamlit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from models.job_eta import MIN_ETA_INTERVALS, count_down
from models.job_launch import launch
from models.job_state import (
    ACTIVE,
    CANCEL_FILE,
    JobCancelled,
    append_progress,
    list_job_folders,
    mark_failed,
    new_job_id,
    process_start_time,
    read_job,
    update_job,
    write_new_job,
)
from models.progress_events import STAGE_EVENT, ProgressEvent, StageEvent, events_of
from store.errors import InputError
from store.project import Project

ACTIONS_FOLDER = "actions"
# action name → (what the page calls it, its options with their defaults)
ACTIONS: dict[str, tuple[str, dict[str, bool]]] = {
    "metrics": ("Computing metrics", {"embeddings": False, "label_issues": True}),
}
# Reports closer together than this are not written (an image-metric pass reports every image);
# the first and last of a stage always are. The page refreshes every 2 s.
REPORT_EVERY_S = 0.5


def actions_dir(project: Project) -> Path:
    return project.jobs_dir / ACTIONS_FOLDER


def _check(project: Project, action: str, options: dict[str, Any]) -> dict[str, bool]:
    if action not in ACTIONS:
        raise InputError(str(project.root), f"unknown action {action!r}", field="action")
    defaults = ACTIONS[action][1]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise InputError(str(project.root), f"unknown option(s) {unknown} of {action!r}", field="options")
    return {key: bool(options.get(key, default)) for key, default in defaults.items()}


def list_actions(project: Project, action: str | None = None) -> list[dict[str, Any]]:
    """Every action job of the project (only those of ``action`` when given), newest first, with 'dir'."""
    # read_job reports a vanished process as failed, as for training
    found = list_job_folders(actions_dir(project))
    return [job for job in found if action is None or job.get("action") == action]


def active_action(project: Project, action: str) -> dict[str, Any] | None:
    """The queued or running job of ``action``, if any (the page shows it instead of its button)."""
    return next((job for job in list_actions(project, action) if job["status"] in ACTIVE), None)


def start_action(project: str | Path | Project, action: str, **options: Any) -> dict[str, Any]:
    """Create the job folder of ``action`` and start its process; returns its job.json (with 'dir').

    action: a key of ACTIONS; options: its options (unknown ones raise InputError; missing ones take
    their defaults).

    While a job of the same action is queued or running, that job is returned and nothing new starts
    (two clicks, or two browser sessions, must not compute the same thing twice).
    """
    project = project if isinstance(project, Project) else Project(project)
    checked = _check(project, action, options)
    running = active_action(project, action)
    if running is not None:
        return running
    job_id = new_job_id()
    folder = actions_dir(project) / job_id
    write_new_job(folder, job_id, project, kind="action", action=action, options=checked)
    launch(folder, runner="models.action_runner")
    return {**read_job(folder), "dir": str(folder)}


# ----- progress and ETA (read by the page) ---------------------------------------------------------


def current_stage(progress: list[ProgressEvent]) -> StageEvent | None:
    """The newest progress event: {'stage', 'done', 'total', 'time'}; None before the first."""
    events = events_of(progress, STAGE_EVENT)
    return events[-1] if events else None


def estimate_eta(
    job: dict[str, Any], progress: list[ProgressEvent], now: float | None = None
) -> float | None:
    """Seconds left in the current stage, or None until there is data to measure it from.

    The rate is the mean time per item over the whole stage so far, from its first report to its
    newest (smoothed: one slow batch moves it little), and it needs at least MIN_ETA_INTERVALS
    intervals that advanced the count; the start-up before the first report (imports, loading the
    backbone) is left out. Counted down from the newest report, never below 0.
    """
    if job.get("status") != "running":
        return None
    last = current_stage(progress)
    if last is None:
        return None
    events = [
        e
        for e in events_of(progress, STAGE_EVENT)
        if e.get("stage") == last["stage"] and e.get("total") == last["total"]
    ]
    advanced = sum(1 for a, b in zip(events, events[1:], strict=False) if int(b["done"]) > int(a["done"]))
    if advanced < MIN_ETA_INTERVALS or int(last["done"]) <= int(events[0]["done"]):
        return None
    return count_down(events[0], last, time.time() if now is None else now)


# ----- running (inside models.action_runner) --------------------------------------------------------


def _run_metrics(project: Project, options: dict[str, bool], report: Any) -> dict[str, Any]:
    from store.metrics_update import update_metrics

    summary = update_metrics(
        project.root, embeddings=options["embeddings"], label_issues=options["label_issues"], progress=report
    )
    return {"datasets": sorted(summary["datasets"])}


_RUNNERS = {"metrics": _run_metrics}


def run_action(job_dir: str | Path) -> dict[str, Any]:
    """Run a created action job to its end and record it in job.json; returns the final job.json.

    Each progress report is appended to progress.jsonl and polls the cancel flag: a cancel ends the
    job as 'cancelled' at the next report (the action's own staging keeps the project whole). Any
    exception ends it as 'failed' with its one-line reason and traceback, and is re-raised.
    """
    job_dir = Path(job_dir).resolve()
    job = update_job(job_dir, pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    project = Project(job["project"])
    options = _check(project, job["action"], job.get("options") or {})
    cancel_flag = job_dir / CANCEL_FILE

    written = {"stage": None, "time": 0.0}

    def report(stage: str, done: int, total: int) -> None:
        now = time.time()
        if stage != written["stage"] or done >= total or now - float(written["time"]) >= REPORT_EVERY_S:
            event: StageEvent = {"event": STAGE_EVENT, "stage": stage, "done": int(done), "total": int(total)}
            append_progress(job_dir, event)
            written.update(stage=stage, time=now)
        if cancel_flag.exists():
            raise JobCancelled()

    try:
        phase = ACTIONS[job["action"]][0] + (" and embeddings" if options.get("embeddings") else "")
        update_job(job_dir, status="running", phase=phase, started_at=time.time())
        result = _RUNNERS[job["action"]](project, options, report)
        return update_job(job_dir, status="succeeded", phase="done", ended_at=time.time(), result=result)
    except JobCancelled:
        return update_job(job_dir, status="cancelled", phase="cancelled", ended_at=time.time())
    except BaseException as error:
        mark_failed(job_dir, error)
        raise
