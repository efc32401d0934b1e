"""The Training page and the sidebar training form, headless through AppTest.

The form test starts a real runner, but keeps it queued behind a held GPU lock, so no training
runs; the page test draws a running job whose progress lines are written by the test.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from models import devices, job_launch, job_state
from store.project import Project
from tests.conftest import REPO
from tests.models.test_jobs import holding_gpu_lock, make_project, stop_if_alive, wait_for
from tests.models.tiny_configs import FAST


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("training_page"))


def _training_page(project: Path, job: Path | None = None) -> AppTest:
    """The Training page in a new browser session, showing ``job`` when given."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    if job is not None:
        at.session_state["training_job"] = job.name
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    return at


def _form_app(project_root: str) -> None:
    """The sidebar form alone (AppTest of app.py drops the sidebar on reruns, so clicks there get lost)."""
    import streamlit as st

    from pages.training_form import render_training_form

    with st.sidebar:
        render_training_form(project_root, ["tr", "va"])


def _form(project: Path) -> AppTest:
    at = AppTest.from_function(_form_app, args=(str(project),), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_every_page_has_the_form_in_the_sidebar(project):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    at.run()
    assert at.title[0].value.endswith("Summary")
    assert [e.label for e in at.sidebar.expander] == ["Train a model"]
    assert at.sidebar.selectbox(key="tf_train").options == ["tr", "va"]
    assert at.sidebar.selectbox(key="tf_val").value == "va"


def _submit(at: AppTest) -> None:
    """Click the sidebar form's 'Start training' and rerun."""
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception


@contextlib.contextmanager
def stand_in_job(project: Path, epochs: int, name: str | None, **fields: Any) -> Iterator[Path]:
    """A training job marked running with ``fields``, owned by a live stand-in process (killed after)."""
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    config = job_launch.prepare_config(None, **{**FAST, "epochs": epochs})
    folder = job_launch.create_job(project, "tr", "va", config, name)
    pid_start = job_state.process_start_time(helper.pid)
    job_state.update_job(
        folder, status="running", phase="training", pid=helper.pid, pid_start=pid_start, **fields
    )
    try:
        yield folder
    finally:
        helper.kill()
        helper.wait()


@pytest.fixture
def running_job(project: Path):
    """A job in the middle of epoch 3 of 5, owned by a live stand-in process."""
    with stand_in_job(project, 5, "pagenet", started_at=time.time() - 65, steps_per_epoch=2) as folder:
        yield _write_three_epochs_of_progress(folder)


def _write_three_epochs_of_progress(folder: Path) -> Path:
    val = {t: {"AP": ap, "AP50": ap * 2} for t, ap in (("bbox", 0.1), ("segm", 0.05))}
    for epoch in (1, 2):
        for step in (1, 2):
            loss = 3.0 / (2 * epoch + step)
            job_state.append_progress(
                folder,
                {
                    "event": "step",
                    "epoch": epoch,
                    "step": step,
                    "global_step": 2 * (epoch - 1) + step,
                    "loss": loss,
                    "loss_classifier": loss / 2,
                    "loss_mask": loss / 2,
                    "lr": 1e-4,
                    "eta_s": 120.0,
                },
            )
        val = {t: {"AP": v["AP"] * epoch, "AP50": v["AP50"] * epoch} for t, v in val.items()}
        job_state.append_progress(
            folder,
            {
                "event": "epoch",
                "epoch": epoch,
                "losses": {"loss": 1.0},
                "lr": 1e-4,
                "val": val,
                "eta_s": 90.0,
            },
        )
    (folder / job_state.LOG_FILE).write_text("INFO epoch 2: loss 0.5000\nINFO epoch 3 step 1: loss 0.4000\n")
    return folder


def test_page_shows_a_running_job_live_and_again_after_a_reload(project, running_job):
    for _reload in range(2):  # a fresh AppTest is a new browser session: the job is still there
        at = _training_page(project)
        assert at.title[0].value == ":material/model_training: Training"
        assert at.selectbox(key="training_job").value == running_job.name
        table = at.dataframe[0].value
        row = table[table["job"] == running_job.name].iloc[0]
        assert (
            row["status"] == "running" and row["model name"] == "pagenet" and row["train → val"] == "tr → va"
        )
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Status"] == "running"
        assert metrics["Epoch"] == "2 / 5"
        assert metrics["Last loss"] == f"{3.0 / 6:.3f}"
        assert metrics["Best val bbox AP"] == "0.200"
        assert metrics["ETA (training)"].endswith("s")  # counted down from the last estimate
        charts = at.get("plotly_chart")
        assert len(charts) == 2
        loss_chart = json.loads(charts[0].proto.spec)
        assert [t["name"] for t in loss_chart["data"]] == ["total", "classifier", "mask"]
        assert loss_chart["data"][0]["x"] == [1, 2, 3, 4]
        val_chart = json.loads(charts[1].proto.spec)
        assert {t["name"] for t in val_chart["data"]} == {"bbox AP", "bbox AP50", "segm AP", "segm AP50"}
        assert "epoch 3 step 1: loss 0.4000" in at.code[0].value
    at.button(key=f"cancel_{running_job.name}").click().run()
    assert (running_job / job_state.CANCEL_FILE).exists()
    assert job_state.read_job(running_job)["cancel_requested_at"]
    assert any("Cancel asked for" in i.value for i in at.info)


def test_failed_job_shows_its_error_and_traceback(project):
    folder = job_launch.create_job(project, "tr", "va", job_launch.prepare_config(None, **FAST))
    job_state.update_job(
        folder,
        status="failed",
        pid=None,
        error="Traceback (most recent call last):\n  ...\nFileNotFoundError: img_0.jpg",
        error_line="FileNotFoundError: img_0.jpg",
    )
    at = _training_page(project, folder)
    assert at.error[0].value == "Failed: FileNotFoundError: img_0.jpg"
    assert "Traceback (most recent call last)" in at.code[0].value


def test_sidebar_form_starts_a_queued_job_the_page_lists_and_cancels(project):
    with holding_gpu_lock(project):
        at = _form(project)
        at.text_input(key="tf_name").input("formnet")
        at.selectbox(key="tf_train").select("tr")
        at.selectbox(key="tf_val").select("va")
        at.selectbox(key="tf_model").select("maskrcnn_mobilenet_v2_fpn")
        at.number_input(key="tf_epochs").set_value(1)
        at.number_input(key="tf_max_side").set_value(128)
        at.radio(key="tf_device").set_value("cpu")
        at.number_input(key="tf_overfit").set_value(2)
        at.checkbox(key="tf_pretrained").uncheck()
        _submit(at)
        assert not at.exception, at.exception
        job_id = at.session_state["tf_started"]
        assert at.success[0].value == f"Job {job_id} started."
        folder = Project(project).jobs_dir / job_id
        try:
            job = job_state.read_job(folder)
            assert job["name"] == "formnet" and job["status"] == "queued"
            assert {k: job["config"][k] for k in ("epochs", "max_side", "device", "overfit_images")} == {
                "epochs": 1,
                "max_side": 128,
                "device": "cpu",
                "overfit_images": 2,
            }
            assert job["config"]["pretrained_backbone"] is False
            wait_for(
                lambda: job_state.read_job(folder)["phase"] == "waiting for another job to finish", "queueing"
            )
            page = _training_page(project)
            assert page.selectbox(key="training_job").value == job_id
            assert {m.label: m.value for m in page.metric}["Status"] == "queued"
            page.button(key=f"cancel_{job_id}").click().run()
            ended = wait_for(
                lambda: (j := job_state.read_job(folder))["status"] != "queued" and j, "the cancel", 60
            )
            assert ended["status"] == "cancelled"
        finally:
            stop_if_alive(folder)


def test_form_reports_bad_input_in_one_line(project):
    import torch

    at = _form(project)
    before = set(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else set()
    at.text_input(key="tf_name").input("bad name!")
    _submit(at)
    assert "'bad name!' is not a valid model name" in at.error[0].value
    if not torch.cuda.is_available():  # a device that does not exist is not even offered
        assert at.radio(key="tf_device").options == ["auto", "cpu"]
        assert "no CUDA device here" in at.radio(key="tf_device").help
    after = set(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else set()
    assert after == before


def test_form_weights_field_reaches_the_config_and_a_missing_file_is_one_line(project, tmp_path):
    at = _form(project)
    before = set(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else set()
    assert at.text_input(key="tf_weights").value == ""
    assert "torch hub checkpoints folder" in at.text_input(key="tf_weights").help
    absent = tmp_path / "coco.pth"
    at.text_input(key="tf_weights").input(str(absent))
    _submit(at)
    assert at.error[0].value == f"{absent}: field 'weights': no such weights file"
    after = set(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else set()
    assert after == before


def test_form_folds_and_tile_options_reach_the_job(project, monkeypatch):
    monkeypatch.setattr(job_launch, "launch", lambda _folder: 0)  # the job is created, never run
    at = _form(project)
    at.text_input(key="tf_name").input("formfold")
    at.number_input(key="tf_folds").set_value(3)
    at.number_input(key="tf_tile_size").set_value(256)
    _submit(at)
    folder = Project(project).jobs_dir / at.session_state["tf_started"]
    job = job_state.read_job(folder)
    assert job["config"]["folds"] == 3 and job["name"] == "formfold-oof3"
    assert job["config"]["tile_size"] == 256 and job["config"]["tile_overlap"] == 0.2
    job_state.update_job(folder, status="cancelled", phase="cancelled", ended_at=time.time())


@pytest.fixture
def live_job(project: Path):
    """A job marked running and owned by a live stand-in process; the test writes its progress."""
    with stand_in_job(project, 2, None, started_at=time.time() - 10, steps_per_epoch=20) as folder:
        yield folder
    job_state.update_job(folder, status="cancelled")


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_no_eta_before_steps_are_timed_then_predict_phase_progress(project, live_job):
    step = {"event": "step", "epoch": 1, "step": 1, "global_step": 1, "loss": 2.0, "lr": 1e-4, "eta_s": 5.0}
    job_state.append_progress(live_job, step)
    at = _training_page(project)
    at.selectbox(key="training_job").set_value(live_job.name).run()
    assert _metrics(at)["ETA (training)"] == "measuring…", "one step is no basis for an ETA"
    assert not at.get("progress")

    job_state.update_job(live_job, phase="predicting on the val dataset")
    start = time.time() - 8
    for done in (2, 4, 6):
        job_state.append_progress(
            live_job, {"event": "predict", "done": done, "total": 20, "time": start + done}
        )
    at.run()
    assert not at.exception, at.exception
    progress = at.get("progress")
    assert len(progress) == 1 and "6 / 20 images" in progress[0].proto.text
    assert progress[0].proto.value == 30  # percent
    eta = _metrics(at)["ETA (predicting)"]
    assert eta.endswith("s") and eta != "0s"


def test_form_offers_loader_workers_defaulting_to_the_cores(project):
    at = _form(project)
    workers = at.number_input(key="tf_workers")
    cores = devices.available_cores()
    assert workers.value == cores
    assert workers.label == f"Loader workers ({cores} cores here)"
    assert f"({cores} here)" in workers.help


def test_form_offers_each_cuda_device_torch_sees(project, monkeypatch):
    devices.available_devices.cache_clear()
    monkeypatch.setattr(devices, "_nvidia_present", lambda: True)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    try:
        at = _form(project)
        assert at.radio(key="tf_device").options == ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]
    finally:
        devices.available_devices.cache_clear()


def test_cancelled_job_checkpoint_can_be_used_from_the_page(project):
    """A cancelled job's kept best.pt: the page offers predict + import in the background and the
    command; a checkpoint that is not one fails with the CLI's one line, shown on the page."""
    folder = job_launch.create_job(project, "tr", "va", job_launch.prepare_config(None, **FAST), "stopped")
    job_state.update_job(folder, status="cancelled", phase="cancelled", pid=None, ended_at=time.time())
    (folder / job_state.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    at = _training_page(project, folder)
    assert "use it below" in at.warning[0].value
    command = next(c.value for c in at.code if c.value.startswith("cocolens predict"))
    assert (
        f"--checkpoint {folder / job_state.CHECKPOINT_FILE}" in command
        and "--dataset va --model stopped-best" in command
    )
    at.button(key=f"tr_ckpt_start_{folder.name}").click().run()
    assert not at.exception, at.exception
    started = job_state.read_job(folder)["predict"]
    assert started["model"] == "stopped-best" and started["dataset"] == "va"
    wait_for(
        lambda: not job_state.process_alive(started["pid"], started["pid_start"]), "the predict process", 120
    )
    at.run()
    failure = next(e.value for e in at.error if "stopped-best" in e.value)
    assert "not a cocolens checkpoint" in failure
