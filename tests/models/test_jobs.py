"""Training jobs end to end: a real runner process per job, on tiny made-up datasets.

Fast settings everywhere: the light MobileNetV2 Mask R-CNN from scratch, 128 px, 1 epoch on 2
images. The app-side readers (read_job, read_progress) are what the Training page uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import main
from models import devices, job_eta, job_launch, job_state
from store.errors import InputError
from store.project import Project
from tests.conftest import write_small_coco
from tests.models.tiny_configs import FAST

WAIT_S = 300  # generous: CI machines are slow and shared


def make_project(folder: Path, datasets: dict[str, int] | None = None) -> Path:
    """A project with datasets 'tr' (4 images) and 'va' (2 images) unless told otherwise."""
    root = folder / "project"
    for seed, (name, count) in enumerate((datasets or {"tr": 4, "va": 2}).items()):
        images, ann = write_small_coco(folder / f"src_{name}", n_images=count, seed=seed)
        args = ["import", "coco", "--images", str(images), "--annotations", str(ann)]
        assert main([*args, "--project", str(root), "--dataset", name, "--quiet", "--workers", "1"]) == 0
    return root


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def holding_gpu_lock(project_root: Path) -> Iterator[None]:
    """Play 'another job is training': hold the lock runners queue on."""
    jobs_dir = Project(project_root).jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True)
    with open(jobs_dir / job_launch.GPU_LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_if_alive(job_dir: Path) -> None:
    """Never leave a runner behind when a test fails half way."""
    pid = json.loads((job_dir / job_state.JOB_FILE).read_text()).get("pid")
    if pid and job_state.process_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("jobs"))


@pytest.fixture
def started(project: Path) -> Iterator[list[Path]]:
    """Job folders a test started; any runner still alive at the end is killed."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        stop_if_alive(folder)


def start(project: Path, started: list[Path], **overrides: Any) -> Path:
    config = job_launch.prepare_config(None, **{**FAST, **overrides})
    job_id = job_launch.start_job(project, "tr", "va", config)
    folder = Project(project).jobs_dir / job_id
    started.append(folder)
    return folder


# ----- without a runner ------------------------------------------------------------------------


def test_bad_input_is_one_line_input_error(project, tmp_path):
    before = sorted(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else []
    config = job_launch.prepare_config(None, **FAST)
    with pytest.raises(InputError, match=r"field '--train': no dataset 'nope' \(the project has tr, va\)"):
        job_launch.create_job(project, "nope", "va", config)
    with pytest.raises(InputError, match="field '--val'"):
        job_launch.create_job(project, "tr", "missing", config)
    with pytest.raises(InputError, match=r"field 'lr': must be > 0"):
        job_launch.prepare_config(None, lr=0.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('epochs = "ten"\n')
    with pytest.raises(InputError) as error:
        job_launch.prepare_config(bad)
    assert str(error.value) == f"{bad}: field 'epochs': must be int, got str 'ten'"
    with pytest.raises(InputError, match="field '--config': no such config file"):
        job_launch.prepare_config(tmp_path / "absent.toml")
    with pytest.raises(InputError, match="'bad name!' is not a valid model name"):
        job_launch.create_job(project, "tr", "va", config, name="bad name!")
    after = sorted(Project(project).jobs_dir.glob("*")) if Project(project).jobs_dir.exists() else []
    assert after == before  # bad input leaves no job folder behind
    job_launch.create_job(project, "tr", "va", config, name="dupe")  # queued, never launched
    with pytest.raises(InputError, match="a model or running job is already named 'dupe'"):
        job_launch.create_job(project, "tr", "va", config, name="dupe")


def test_cuda_asked_without_cuda_is_one_line(project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = job_launch.prepare_config(None, **{**FAST, "device": "cuda"})
    with pytest.raises(InputError, match="CUDA is not available here; use 'auto' or 'cpu'"):
        job_launch.create_job(project, "tr", "va", config)


def test_progress_reader_skips_a_half_written_line(tmp_path):
    job_state.append_progress(tmp_path, {"event": "step", "epoch": 1, "step": 1, "loss": 2.0, "eta_s": 100.0})
    with open(tmp_path / job_state.PROGRESS_FILE, "a") as handle:
        handle.write('{"event": "step", "epo')  # the writer is mid-line
    events = job_state.read_progress(tmp_path)
    assert [e["loss"] for e in events] == [2.0]


def _timed_run(epochs: int, per_epoch: int, step_s: float, eval_s: float, until: float) -> list[dict]:
    """Progress events of a run logging every step, each step_s long, each epoch then evaluated in eval_s,
    as far as they were written by time `until` (seconds from the start)."""
    events, now = [], 5.0  # 5 s of warm-up before the first step
    for epoch in range(1, epochs + 1):
        for step in range(1, per_epoch + 1):
            now += step_s
            if now > until:
                return events
            events.append({"event": "step", "epoch": epoch, "step": step, "time": now, "loss": 1.0,
                           "global_step": (epoch - 1) * per_epoch + step, "eta_s": 1.0})  # fmt: skip
        now += eval_s
        if now > until:
            return events
        epoch_s = per_epoch * step_s + eval_s + (5.0 if epoch == 1 else 0.0)
        events.append({"event": "epoch", "epoch": epoch, "time": now, "val": {"bbox": {"AP": 0.1}},
                       "epoch_s": epoch_s, "eta_s": 1.0})  # fmt: skip
    return events


def test_eta_only_once_measured_then_smooth_across_evaluations():
    job = {"status": "running", "phase": "training", "steps_per_epoch": 10,
           "config": {"epochs": 5, "eval_every": 1}}  # fmt: skip
    # One logged step (its own eta_s says 1 s): no estimate yet, whatever the trainer guessed.
    assert job_eta.estimate_eta(job, _timed_run(5, 10, 2.0, 30.0, until=7.5), now=7.5) is None
    truth = 5 + 5 * (10 * 2.0 + 30.0)  # the run ends at 255 s
    seen = []
    for now in (20.0, 40.0, 60.0, 80.0, 120.0, 160.0, 200.0):
        seconds, covers = job_eta.estimate_eta(job, _timed_run(5, 10, 2.0, 30.0, until=now), now=now)
        if now > 55.0:  # the first evaluation has been timed: the estimate is right, and only counts down
            assert seconds == pytest.approx(truth - now, abs=2.5) and covers == "training and evaluation"
            seen.append(seconds)
        else:  # steps only, said so: a lower bound (the page shows "≥")
            assert covers == "training steps; evaluation not timed yet" and seconds < truth - now
    assert all(b < a for a, b in zip(seen, seen[1:], strict=False)), seen
    assert job_eta.eta_seconds({**job, "status": "succeeded"}, []) is None


def test_eta_and_progress_of_the_predict_phase():
    job = {"status": "running", "phase": "predicting on the val dataset", "config": {"epochs": 2}}
    steps = [{"event": "epoch", "epoch": 2, "time": 100.0, "epoch_s": 50.0, "eta_s": 0.0}]
    assert job_eta.estimate_eta(job, steps, now=101.0) is None and job_eta.predict_progress(steps) is None
    predicted = [
        *steps,
        *({"event": "predict", "done": d, "total": 40, "time": 100.0 + d} for d in (4, 8, 12)),
    ]
    seconds, covers = job_eta.estimate_eta(job, predicted, now=112.0)
    assert seconds == pytest.approx(28.0) and covers == "prediction on the val dataset"
    assert job_eta.predict_progress(predicted) == (12, 40)


def test_loader_workers_never_exceed_the_available_cores(monkeypatch):
    config = job_launch.prepare_config(None, **{**FAST, "workers": 4})
    monkeypatch.setattr(job_state.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert devices.available_cores() == 2
    assert devices.fit_workers(config).workers == 2
    assert devices.fit_workers(config.replace(workers=1)).workers == 1
    # the default (-1) is one per core this process may run on
    assert job_launch.prepare_config(None).workers == -1
    assert devices.fit_workers(job_launch.prepare_config(None)).workers == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    from models.train import loader_workers

    assert loader_workers(-1) == 3 and loader_workers(1) == 1
    with pytest.raises(InputError, match="field 'workers': must be >= 0, or -1 for one per available core"):
        job_launch.prepare_config(None, workers=-2)


def _fake_job(project: Path, pid: int | None, status: str = "running", **extra: Any) -> Path:
    folder = job_launch.create_job(project, "tr", "va", job_launch.prepare_config(None, **FAST))
    start = job_state.process_start_time(pid) if pid else None
    job_state.update_job(folder, status=status, pid=pid, pid_start=start, **extra)
    return folder


def test_a_job_whose_process_vanished_reads_as_failed(project):
    helper = subprocess.Popen([sys.executable, "-c", "pass"])
    helper.wait()
    folder = _fake_job(project, helper.pid)
    job = job_state.read_job(folder)
    assert job["status"] == "failed" and job["phase"] == "failed"  # not still "training"
    assert job["error"].startswith(f"process died (pid {helper.pid}")
    assert json.loads((folder / job_state.JOB_FILE).read_text())["status"] == "failed"  # persisted


def test_a_recycled_pid_is_not_mistaken_for_the_job(project):
    folder = _fake_job(project, os.getpid())
    job_state.update_job(folder, pid_start="1")  # same number, another process start
    assert job_state.read_job(folder)["status"] == "failed"


def test_cancel_falls_back_to_sigterm_after_the_grace_period(project, monkeypatch):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        folder = _fake_job(project, helper.pid)
        monkeypatch.setattr(job_state, "CANCEL_GRACE_S", 0.0)
        job_launch.cancel_job(folder)
        assert (folder / job_state.CANCEL_FILE).exists()
        time.sleep(0.05)
        job_state.read_job(folder)  # the reader notices the grace period is over: SIGTERM
        assert helper.wait(timeout=10) == -signal.SIGTERM
        assert job_state.read_job(folder)["status"] == "cancelled"
    finally:
        helper.kill()


# ----- with real runner processes --------------------------------------------------------------


@pytest.mark.slow
def test_background_job_trains_predicts_and_imports_a_model(project, started):
    import torch

    from store.queries import ProjectReader

    folder = start(project, started)
    assert job_state.read_job(folder)["pid"]  # launched: its pid is recorded at once
    seen_running_with_progress = wait_for(
        lambda: (
            job_state.read_job(folder)["status"] == "running" and len(job_state.read_progress(folder)) > 0
        ),
        "progress lines while the job runs",
    )
    assert seen_running_with_progress
    job = wait_for(
        lambda: (j := job_state.read_job(folder))["status"] not in job_state.ACTIVE and j, "the job to end"
    )
    assert job["status"] == "succeeded", job.get("error")
    assert job["started_at"] <= job["ended_at"] and job["steps_per_epoch"] == 1

    events = job_state.read_progress(folder)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "step" and "epoch" in kinds and "done" in kinds and kinds[-1] == "imported"
    epoch = next(e for e in events if e["event"] == "epoch")
    assert set(epoch["val"]) == {"bbox", "segm"} and "AP" in epoch["val"]["bbox"]
    assert "training done: best epoch 1" in job_state.log_tail(folder)

    payload = torch.load(folder / job_state.CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    assert payload["meta"]["model"] == "maskrcnn_mobilenet_v2_fpn" and payload["meta"]["image_size"] == 128
    results = json.loads((folder / job_state.RESULTS_FILE).read_text())
    assert len(results) == job["predictions"] > 0
    assert all(
        r["segmentation"]["size"] == [120, 160] and isinstance(r["segmentation"]["counts"], str)
        for r in results
    )

    model = job["model"]
    assert model == f"train-{job['id']}"
    meta = Project(project).model_meta(model)
    assert meta["job"] == job["id"] and meta["checkpoint"] == str(folder / job_state.CHECKPOINT_FILE)
    assert meta["dataset"] == "va" and meta["iou_types"] == ["bbox", "segm"]
    stored = ProjectReader(project).scalar("SELECT count(*) FROM predictions WHERE model = ?", [model])
    assert stored == len(results)
    assert job["imported"]["predictions"] == len(results)


@pytest.mark.slow
def test_second_job_queues_then_runs_after_cancel_and_kill_9_reads_as_died(project, started):
    first = start(project, started, epochs=500)
    wait_for(lambda: job_state.read_progress(first), "the first job's first training step")
    second = start(project, started, epochs=500)
    wait_for(
        lambda: job_state.read_job(second)["phase"] == "waiting for another job to finish", "second to queue"
    )
    time.sleep(1.0)
    assert job_state.read_job(second)["status"] == "queued" and job_state.read_progress(second) == []
    assert job_state.read_job(first)["status"] == "running"

    job_launch.cancel_job(first)
    ended = wait_for(
        lambda: (j := job_state.read_job(first))["status"] not in job_state.ACTIVE and j, "cancel"
    )
    assert ended["status"] == "cancelled" and ended["phase"] == "cancelled"  # written by the runner
    assert f"train-{ended['id']}" not in Project(project).models()

    running = wait_for(
        lambda: (j := job_state.read_job(second))["status"] == "running" and j, "second to start"
    )
    os.kill(running["pid"], signal.SIGKILL)
    died = wait_for(lambda: (j := job_state.read_job(second))["status"] != "running" and j, "kill -9 noticed")
    assert died["status"] == "failed"
    assert died["error"].startswith(f"process died (pid {running['pid']}")


def test_sigterm_to_a_runner_ends_the_job_as_cancelled(project, started):
    with holding_gpu_lock(project):
        folder = start(project, started)
        job = wait_for(
            lambda: (j := job_state.read_job(folder))["phase"] == "waiting for another job to finish" and j,
            "the runner to queue behind the held lock",
        )
        assert job["status"] == "queued"
        os.kill(job["pid"], signal.SIGTERM)
        ended = wait_for(
            lambda: (j := job_state.read_job(folder))["status"] != "queued" and j, "the runner to stop"
        )
    assert ended["status"] == "cancelled" and ended["phase"] == "cancelled"
    assert job_state.read_progress(folder) == []


def test_cancel_while_queued_never_trains(project, started):
    with holding_gpu_lock(project):
        folder = start(project, started)
        wait_for(
            lambda: job_state.read_job(folder)["phase"] == "waiting for another job to finish", "queueing"
        )
        job_launch.cancel_job(folder)
        ended = wait_for(lambda: (j := job_state.read_job(folder))["status"] != "queued" and j, "the cancel")
    assert ended["status"] == "cancelled" and ended["started_at"] is None
    assert not (folder / job_state.CHECKPOINT_FILE).exists()


def test_runner_crash_on_deleted_images_is_failed_with_traceback(tmp_path, started):
    root = make_project(tmp_path, {"tr": 2, "va": 2})
    shutil.rmtree(tmp_path / "src_tr" / "images")  # imported fine, then the files went away
    config = job_launch.prepare_config(None, **FAST)
    folder = Project(root).jobs_dir / job_launch.start_job(root, "tr", "va", config)
    started.append(folder)
    job = wait_for(
        lambda: (j := job_state.read_job(folder))["status"] not in job_state.ACTIVE and j, "the crash"
    )
    assert job["status"] == "failed"
    assert "FileNotFoundError" in job["error_line"] and "img_0.jpg" in job["error_line"]
    assert job["error"].startswith("Traceback (most recent call last):")
    assert "models/data.py" in job["error"]
    wait_for(lambda: "job failed" in job_state.log_tail(folder, 200), "the runner to log its traceback", 60)


def test_eta_of_a_folds_job_counts_the_running_fold_and_the_ones_to_come():
    """--folds 3, 2 epochs of 10 steps (2 s each) + 30 s evaluations: 100 s per fold plus 5 s warm-up."""
    per_fold = 5 + 2 * (10 * 2.0 + 30.0)
    job = {"status": "running", "phase": "training fold 2 of 3", "steps_per_epoch": 10,
           "config": {"epochs": 2, "eval_every": 1}}  # fmt: skip
    first = [{**e, "fold": 0} for e in _timed_run(2, 10, 2.0, 30.0, until=per_fold)]
    start = per_fold + 20.0  # fold 0's prediction took 20 s
    now = start + 60.0  # fold 1 is past its first evaluation
    second = [
        {**e, "fold": 1, "time": e["time"] + start} for e in _timed_run(2, 10, 2.0, 30.0, until=now - start)
    ]
    seconds, covers = job_eta.estimate_eta(job, first + second, now=now)
    this_fold_left = per_fold - (now - start)
    # the pace is measured from the fold's first event (its warm-up is not seen): 5 s short per fold
    assert seconds == pytest.approx(this_fold_left + (per_fold - 5.0), abs=3.0)
    assert covers.endswith("then 1 more fold at this fold's pace")
    assert job_eta.estimate_eta({**job, "phase": "training fold 3 of 3"}, first + second, now=now) is None
