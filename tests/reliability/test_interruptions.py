"""``kill -9`` at the worst moment: the project stays whole and the same command run again completes.

The import case (kill during the image pass, resume from checkpoints) is
tests/store/test_resume_and_readers.py::test_kill_during_import_then_resume; here: metric
computation, prediction import and checkpoint writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from store.queries import ProjectReader
from tests.conftest import REPO, write_small_coco
from tests.reliability.hostile import snapshot

SLOW_PLUGIN = """
import os, time
from metrics.registry import image_metric

@image_metric(description="Mean grey level, slowly (a test plugin that sleeps).", low=0, high=255)
def slow_grey(ctx):
    with open(os.environ["COCOLENS_TEST_CALLS"], "a") as handle:
        handle.write("call\\n")
    time.sleep(float(os.environ.get("COCOLENS_TEST_SLEEP", "0")))
    return float(ctx.gray.mean())
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), *args]


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read()}"
        assert time.time() < deadline, "timed out waiting for the moment to kill"
        time.sleep(0.01)


def _without_staging(snap: dict[str, str]) -> dict[str, str]:
    """What the app can see: .staging is never read (a killed writer's leftovers live there)."""
    return {k: v for k, v in snap.items() if not k.startswith(".staging")}


def _all_parquet_readable(project: Path) -> int:
    files = list(project.glob("datasets/*/**/*.parquet")) + list(project.glob("models/*/*.parquet"))
    for path in files:
        pd.read_parquet(path)
    return len(files)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    images, ann = write_small_coco(tmp_path / "src", n_images=5)
    root = tmp_path / "project"
    done = subprocess.run(
        _cli("import", "coco", "--images", str(images), "--annotations", str(ann), "--project", str(root))
        + ["--dataset", "small", "--quiet", "--workers", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return root


def test_kill_during_metric_computation_then_rerun(project, tmp_path):
    plugin = tmp_path / "slow_plugin.py"
    plugin.write_text(SLOW_PLUGIN)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "COCOLENS_TEST_CALLS": str(calls), "COCOLENS_TEST_SLEEP": "0.5"}
    before = snapshot(project)
    command = _cli("metrics", "--project", str(project), "--add", str(plugin), "--workers", "1")
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: calls.is_file() and len(calls.read_text().splitlines()) >= 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert _without_staging(snapshot(project)) == _without_staging(before), (
        "a killed run changed what the app sees"
    )
    assert not list(project.glob("datasets/*/metrics/*slow_grey*")), "no partial metric file may be visible"
    assert str(plugin) not in (project / "project.json").read_text()
    assert _all_parquet_readable(project) > 10
    assert "slow_grey" not in ProjectReader(project).metric_names()

    done = subprocess.run(
        command, cwd=REPO, env={**env, "COCOLENS_TEST_SLEEP": "0"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    values = pd.read_parquet(project / "datasets" / "small" / "metrics" / "image__slow_grey.parquet")
    assert len(values) == 5 and values["image_id"].is_unique and values["value"].notna().all()
    assert str(plugin) in json.loads((project / "project.json").read_text())["plugins"]
    assert not (project / ".staging").exists()
    reader = ProjectReader(project)
    assert reader.scalar("SELECT count(*) FROM metric_values WHERE metric = 'slow_grey'") == 5
    assert reader.scalar("SELECT count(*) FROM metric_values WHERE metric = 'brightness'") == 5, (
        "nothing doubled"
    )


def _big_predictions(path: Path, count: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    xy, wh = rng.uniform(0, 60, (count, 2)), rng.uniform(5, 60, (count, 2))
    rows = [
        {
            "image_id": int(rng.integers(0, 5)),
            "category_id": int(rng.integers(1, 3)),
            "bbox": [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])],
            "score": float(rng.random()),
        }
        for k in range(count)
    ]
    path.write_text(json.dumps(rows))


@pytest.mark.slow
def test_kill_during_prediction_matching_then_rerun(project, tmp_path):
    preds = tmp_path / "preds.json"
    _big_predictions(preds, 100_000)  # matching must outlast the 0.3 s before the kill on a quiet machine
    before = snapshot(project)
    # --no-label-issues: the kill must land in the matching, not in the label pass that follows the commit
    command = _cli(
        "import", "predictions", str(preds), "--project", str(project), "--model", "big", "--quiet",
        "--no-label-issues",
    )  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: bool(list(project.glob(".staging/model-big-*"))), proc)
    time.sleep(0.3)  # inside the matching
    assert proc.poll() is None, "the import finished before the kill: make the file bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert _without_staging(snapshot(project)) == _without_staging(before)
    assert not (project / "models" / "big").exists()
    assert ProjectReader(project).models() == []

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    reader = ProjectReader(project)
    assert reader.models() == ["big"]
    assert reader.scalar("SELECT count(*) FROM predictions") == 100_000
    assert reader.scalar("SELECT count(DISTINCT prediction_id) FROM predictions") == 100_000
    assert reader.scalar("SELECT count(*) FROM prediction_matches WHERE iou_type = 'bbox'") == 100_000
    assert not list(project.glob(".staging/model-big-*")), "the rerun cleans the killed run's stage"


CHECKPOINT_WRITER = """
import itertools, sys
from pathlib import Path
import torch
from models.train import save_checkpoint

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 512))  # ~6 MB
for step in itertools.count():
    with torch.no_grad():
        model[0].bias.fill_(float(step))
    save_checkpoint(Path(sys.argv[1]), model, {"step": step})
    print(step, flush=True)
"""


def _check_checkpoint(path: Path) -> int:
    """The file loads with weights_only=True and is one whole save: its tensors agree with its meta."""
    import torch

    data = torch.load(path, weights_only=True, map_location="cpu")
    assert set(data) >= {"format", "state_dict", "meta"}
    state = data["state_dict"]
    assert set(state) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert state["1.weight"].shape == (512, 1024)
    step = data["meta"]["step"]
    assert float(state["0.bias"][0]) == float(state["0.bias"][-1]) == float(step)
    return step


@pytest.mark.slow
def test_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from models.train import save_checkpoint

    path = tmp_path / "best.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHECKPOINT_WRITER, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "0", proc.stderr.read()  # the first save is done
    steps_seen = []
    deadline = time.time() + 3
    while time.time() < deadline:  # read while it writes: never a torn file
        steps_seen.append(_check_checkpoint(path))
    os.kill(proc.pid, signal.SIGKILL)  # most likely inside torch.save: the writer saves back to back
    proc.wait()
    last = _check_checkpoint(path)
    assert len(set(steps_seen)) >= 2, "the writer saved several times while we read"
    assert last >= max(steps_seen)

    # the next run writes over whatever temporary file the killed one left
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 512))
    with torch.no_grad():
        model[0].bias.fill_(12345.0)
    save_checkpoint(path, model, {"step": 12345})
    assert _check_checkpoint(path) == 12345
