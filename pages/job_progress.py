"""A page's long action as a background job: its button, then its progress (done / total, ETA) while it
runs, redrawn every REFRESH_S seconds by a fragment; the rest of the page stays usable meanwhile.

The work runs in its own process (models.actions); this module only starts it and reads its folder,
so reloading the page or closing the browser never stops it, and a second browser session sees the
same job instead of starting another.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from models import actions
from models.job_launch import cancel_job
from models.job_state import ACTIVE, LOG_FILE, read_job, read_progress
from models.progress_events import ProgressEvent
from store.errors import InputError
from store.project import Project

REFRESH_S = 2


def duration_text(seconds: float | None) -> str:
    """'4s', '2m 05s', '1h 03m' (empty for None)."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def progress_text(job: dict[str, Any], progress: list[ProgressEvent]) -> tuple[float, str]:
    """(fraction of the current stage done, the line under the bar) for a queued or running job."""
    if job["status"] == "queued":
        return 0.0, "Waiting to start…"
    stage = actions.current_stage(progress)
    if stage is None:
        return 0.0, f"{job.get('phase', 'Working')}: starting (loading code and models)…"
    done, total = int(stage["done"]), int(stage["total"])
    eta = actions.estimate_eta(job, progress)
    left = f"about {duration_text(eta)} left in this stage" if eta is not None else "measuring the time left…"
    return (
        done / total if total else 0.0
    ), f"{job.get('phase')} — {stage['stage']}: {done:,} / {total:,} · {left}"


def _job_view(project_root: str, job_id: str) -> None:
    job_dir = actions.actions_dir(Project(project_root)) / job_id
    job = read_job(job_dir)
    if job["status"] not in ACTIVE:
        st.rerun()  # it ended: redraw the whole page once (new results), and stop refreshing
    fraction, text = progress_text(job, read_progress(job_dir))
    st.progress(min(1.0, fraction), text=text)
    left, right = st.columns([5, 1])
    left.caption(
        f"Runs in the background (job `{job_id}`): this page stays usable, and leaving or reloading it does "
        f"not stop the job. Log: `{job_dir / LOG_FILE}`."
    )
    if job.get("cancel_requested_at"):
        right.caption("Cancelling…")
    elif right.button("Cancel", key=f"action_cancel_{job_id}", icon=":material/stop_circle:"):
        cancel_job(job_dir)
        st.rerun(scope="fragment")


def running_panel(project_root: str, action: str) -> bool:
    """The progress of the queued or running job of ``action``, if there is one; True when drawn."""
    running = actions.active_action(Project(project_root), action)
    if running is None:
        return False
    st.fragment(_job_view, run_every=REFRESH_S)(project_root, running["id"])
    return True


def action_panel(project_root: str, action: str, label: str, icon: str, help: str, **options: Any) -> bool:
    """The button that starts ``action`` in the background, or, while a job of it is queued or running,
    its progress; the outcome of the last run when it failed or was cancelled. True while one runs."""
    if running_panel(project_root, action):
        return True
    project = Project(project_root)
    finished = actions.list_actions(project, action)
    if finished and finished[0]["status"] == "failed":
        st.error(
            f"The last run failed: {finished[0].get('error_line') or 'see its log'} (`{finished[0]['dir']}`)"
        )
    elif finished and finished[0]["status"] == "cancelled":
        st.info("The last run was cancelled; the project keeps only whole results of what it had finished.")
    if st.button(label, icon=icon, key=f"action_start_{action}", type="primary", help=help):
        try:
            actions.start_action(project, action, **options)
        except InputError as error:
            st.error(str(error))
            return False
        st.rerun()
    return False
