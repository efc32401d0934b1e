"""Training: every job of the project, and for the chosen one live loss / val mAP curves, ETA, log
tail, config and a cancel button. Jobs run in their own processes (models.job_launch); this page only
reads their folders, so reloading it or closing the browser never stops a job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from models.job_eta import estimate_eta, predict_progress
from models.job_launch import cancel_job, predict_argv, predict_state, start_predict
from models.job_state import ACTIVE, best_checkpoint, list_jobs, log_tail, read_progress
from models.progress_events import EpochEvent, ProgressEvent, StepEvent, events_of
from pages.job_progress import duration_text
from pages.state import reader, set_query
from pages.training_form import RENDERED_FLAG, page_link, render_training_form
from store.errors import InputError
from store.project import Project

PAGES_DIR = Path(__file__).resolve().parent
REFRESH_S = 2
LOSS_COLOURS = ["#222222", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else ""


def _elapsed(job: dict[str, Any]) -> float | None:
    start = job.get("started_at")
    if not start:
        return None
    return float(job.get("ended_at") or time.time()) - float(start)


def jobs_table(all_jobs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for job in all_jobs:
        config = job.get("config", {})
        rows.append(
            {
                "job": job["id"],
                "status": job["status"],
                "phase": job.get("phase", ""),
                "model name": job.get("name", ""),
                "train → val": f"{job.get('train')} → {job.get('val')}",
                "architecture": config.get("model", ""),
                "epochs": config.get("epochs"),
                "created": _when(job.get("created_at")),
                "run time": duration_text(_elapsed(job)),
            }
        )
    return pd.DataFrame(rows)


def loss_figure(progress: list[ProgressEvent], steps_per_epoch: int | None) -> go.Figure | None:
    """Every loss component against the global step (training steps as logged)."""
    steps: list[StepEvent] = events_of(progress, "step")
    if not steps:
        return None
    per_epoch = steps_per_epoch or 1
    x = [e.get("global_step", (int(e["epoch"]) - 1) * per_epoch + int(e["step"])) for e in steps]
    names = ["loss"] + sorted(k for k in steps[-1] if k.startswith("loss_"))
    fig = go.Figure()
    for index, name in enumerate(names):
        fig.add_scatter(
            x=x,
            y=[e.get(name) for e in steps],
            mode="lines+markers" if len(steps) < 30 else "lines",
            name="total" if name == "loss" else name.removeprefix("loss_"),
            line=dict(width=3 if name == "loss" else 1.5, color=LOSS_COLOURS[index % len(LOSS_COLOURS)]),
        )
    fig.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="training step",
        xaxis=dict(tickmode="linear", dtick=1) if max(x) <= 15 else {},  # whole steps, not 1.5
        yaxis_title="loss",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def val_figure(progress: list[ProgressEvent]) -> go.Figure | None:
    """Val AP and AP50 (bbox and segm) after each evaluated epoch."""
    epochs: list[EpochEvent] = [e for e in events_of(progress, "epoch") if e.get("val")]
    if not epochs:
        return None
    fig = go.Figure()
    top = 0.0
    styles = {"bbox": "#1f77b4", "segm": "#d62728"}
    for iou_type, colour in styles.items():
        for stat, dash in (("AP", "solid"), ("AP50", "dot")):
            values = [e["val"].get(iou_type, {}).get(stat) for e in epochs]
            if all(v is None for v in values):
                continue
            top = max([top, *(v for v in values if v is not None)])
            fig.add_scatter(
                x=[e["epoch"] for e in epochs],
                y=values,
                mode="lines+markers",
                name=f"{iou_type} {stat}",
                line=dict(color=colour, dash=dash, width=2),
            )
    fig.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="epoch",
        yaxis_title="val mAP (COCO)",
        yaxis_range=[0, min(1.02, max(0.05, 1.2 * top))],  # early APs near 0 stay readable
        xaxis=dict(tickmode="linear", dtick=1) if len(epochs) < 15 else {},
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def _headline(job: dict[str, Any], progress: list[ProgressEvent]) -> None:
    config = job.get("config", {})
    steps: list[StepEvent] = events_of(progress, "step")
    evaluated: list[EpochEvent] = [e for e in events_of(progress, "epoch") if e.get("val")]
    monitor = config.get("monitor", "bbox")
    best = max((e["val"][monitor]["AP"] for e in evaluated), default=None)
    last_epoch = max((int(e["epoch"]) for e in progress if "epoch" in e), default=0)
    phase = str(job.get("phase") or "")
    estimate = estimate_eta(job, progress)
    columns = st.columns([1.6, 1, 1, 1, 1.2])
    columns[0].metric("Status", job["status"], help=f"Phase: {phase}")
    columns[1].metric("Epoch", f"{last_epoch} / {config.get('epochs', '?')}")
    columns[2].metric("Last loss", f"{steps[-1]['loss']:.3f}" if steps else "–")
    columns[3].metric(f"Best val {monitor} AP", f"{best:.3f}" if best is not None else "–")
    if job["status"] == "running":
        label = "ETA (predicting)" if phase.startswith("predicting") else "ETA (training)"
        columns[4].metric(
            label,
            (("≥ " if "not timed" in estimate[1] else "") + duration_text(estimate[0]))
            if estimate
            else "measuring…",
            help=(
                f"Time left, measured from the run so far: {estimate[1]}."
                if estimate
                else "Shown once a few training steps (or prediction batches) have been timed."
            ),
        )
    else:
        columns[4].metric("Run time", duration_text(_elapsed(job)) or "–")
    predicted = predict_progress(progress)
    if job["status"] == "running" and phase.startswith("predicting"):
        done, total = predicted or (0, 0)
        st.progress(
            done / total if total else 0.0,
            text=f"Predicting on **{job.get('val')}** with the best checkpoint: {done:,} / {total:,} images"
            if total
            else f"Predicting on **{job.get('val')}** with the best checkpoint: loading it…",
        )
    st.caption(f"Phase: {phase} · created {_when(job.get('created_at'))} · job folder `{job['dir']}`")


def _outcome(job: dict[str, Any]) -> None:
    status = job["status"]
    if status == "succeeded":
        imported = job.get("imported") or {}
        stats = " · ".join(
            f"{t} AP {imported[t]['AP']:.3f}" for t in ("bbox", "segm") if isinstance(imported.get(t), dict)
        )
        st.success(
            f"Model **{job.get('model')}** imported: {imported.get('predictions', 0):,} predictions on "
            f"**{job.get('val')}**{' · ' + stats if stats else ''}."
        )
        if (PAGES_DIR / "model_quality.py").is_file():
            page_link(
                "pages/model_quality.py",
                f"Open {job.get('model')} in Model quality",
                ":material/track_changes:",
                query_params={"model": str(job.get("model"))},
            )
    elif status == "failed":
        st.error(f"Failed: {job.get('error_line') or (job.get('error') or '').strip().splitlines()[-1:]}")
        if job.get("error"):
            with st.expander("Traceback"):
                st.code(job["error"], language="text")
    elif status == "cancelled":
        kept = best_checkpoint(job["dir"]) is not None
        st.warning("Cancelled." + (" The best checkpoint so far is kept: use it below." if kept else ""))
    if status in ("cancelled", "failed") and best_checkpoint(job["dir"]) is not None:
        _use_checkpoint(job)


def _use_checkpoint(job: dict[str, Any]) -> None:
    """Predict with the best checkpoint of a job that did not finish, and import it as a model
    (a background process, like training), or copy the command."""
    import shlex

    key = job["id"]
    state = predict_state(job)
    with st.container(border=True):
        st.markdown(f"**Use the best checkpoint** `{best_checkpoint(job['dir'])}`")
        if state and state["status"] == "running":
            st.info(
                f"Predicting on **{state['dataset']}** as model **{state['model']}**…",
                icon=":material/hourglass_top:",
            )
        elif state and state["status"] == "imported":
            st.success(f"Imported as model **{state['model']}** (predictions on **{state['dataset']}**).")
            if (PAGES_DIR / "model_quality.py").is_file():
                page_link("pages/model_quality.py", f"Open {state['model']} in Model quality",
                          ":material/track_changes:", query_params={"model": str(state["model"])})  # fmt: skip
        elif state:
            st.error(
                f"Prediction as **{state['model']}** failed: {state['log'].splitlines()[-1] if state['log'] else 'no output'}"
            )
        if state and state["status"] == "running":
            return
        datasets = reader().datasets()
        left, middle, right = st.columns([2, 2, 1])
        dataset = left.selectbox(
            "Predict on", datasets, index=datasets.index(job["val"]) if job.get("val") in datasets else 0,
            key=f"tr_ckpt_dataset_{key}",
        )  # fmt: skip
        model = middle.text_input(
            "As model", value=f"{job.get('name')}-best", key=f"tr_ckpt_model_{key}"
        ).strip()
        right.write("")
        if right.button(
            "Predict and import", key=f"tr_ckpt_start_{key}", icon=":material/play_arrow:", disabled=not model
        ):
            try:
                start_predict(job, dataset, model)
            except InputError as error:
                st.error(str(error))
            else:
                st.rerun()
        st.caption("Or from a terminal:")
        st.code(
            shlex.join(["cocolens", *predict_argv(job, dataset, model or "MODEL")]),
            language="bash",
            wrap_lines=True,
        )


def job_view(job: dict[str, Any]) -> None:
    """One job, as read by the jobs table above it in the same run (one state for both)."""
    job_dir = job["dir"]
    progress = read_progress(job_dir)
    _headline(job, progress)
    if job["status"] in ACTIVE:
        asked = job.get("cancel_requested_at")
        if asked:
            st.info("Cancel asked for: the job stops at the next training step.")
        elif st.button("Cancel job", key=f"cancel_{job['id']}", icon=":material/stop_circle:"):
            cancel_job(job_dir)
            st.rerun()
    _outcome(job)
    left, right = st.columns(2)
    with left:
        st.markdown("**Training loss**")
        loss = loss_figure(progress, job.get("steps_per_epoch"))
        if loss is None:
            st.caption("No training step logged yet.")
        else:
            st.plotly_chart(loss, key="tr_loss", width="stretch")
    with right:
        st.markdown("**Validation mAP**")
        val = val_figure(progress)
        if val is None:
            st.caption("No epoch evaluated yet.")
        else:
            st.plotly_chart(val, key="tr_val", width="stretch")
    st.markdown("**Log** (last lines)")
    st.code(log_tail(job_dir) or "(empty)", language="text")
    with st.expander("Config"):
        st.json(job.get("config", {}))


def _busy(job: dict[str, Any]) -> bool:
    """Training, queued, or predicting with its checkpoint in the background: the page keeps refreshing."""
    return job["status"] in ACTIVE or (predict_state(job) or {}).get("status") == "running"


def jobs_panel(project_root: str, active_when_drawn: bool) -> None:
    """The jobs table, the job picker and the chosen job, from one read of the job folders, redrawn
    every REFRESH_S seconds while a job is active (st.fragment): the table and the panel never disagree."""
    current = list_jobs(Project(project_root))
    if active_when_drawn and not any(_busy(job) for job in current):
        st.rerun()  # the last active job ended: redraw the page once, and stop refreshing
    st.dataframe(jobs_table(current), hide_index=True, width="stretch")
    ids = [job["id"] for job in current]
    by_id = {job["id"]: job for job in current}
    wanted = st.session_state.get("training_job") or st.query_params.get("job")
    if wanted not in ids:
        active = [job["id"] for job in current if job["status"] in ACTIVE]
        wanted = active[0] if active else ids[0]
    st.session_state["training_job"] = wanted
    selected = st.selectbox(
        "Job",
        ids,
        key="training_job",
        format_func=lambda i: f"{i} · {by_id[i].get('name')} · {by_id[i]['status']}",
    )
    set_query(job=selected)
    job_view(by_id[selected])


st.title(":material/model_training: Training")
project = reader().project
if not st.session_state.get(RENDERED_FLAG):  # run on its own (not through app.py): form here
    render_training_form(project.root, reader().datasets(), in_sidebar=False)
all_jobs = list_jobs(project)
if not all_jobs:
    st.info(
        "No training jobs yet. Start one with **Train a model** in the sidebar, or from a terminal: "
        "`cocolens train --project DIR --train DATASET --val DATASET`."
    )
    st.stop()


any_active = any(_busy(job) for job in all_jobs)
st.fragment(jobs_panel, run_every=REFRESH_S if any_active else None)(str(project.root), any_active)
