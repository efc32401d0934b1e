"""Long page actions run as background jobs: "Compute embeddings now" returns at once with a job
running, the page shows its counts while it runs, and the job ends with the embeddings stored; the
ETA is shown only once measured, and smoothed over the stage."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from models import actions, job_state
from models.progress_events import STAGE_EVENT
from store import embedding_store as es
from store.coco_import import import_coco
from store.project import Project
from tests.conftest import REPO, write_small_coco

COUNTS = re.compile(r"(\d[\d,]*) / (\d[\d,]*)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    images, annotations = write_small_coco(tmp_path / "src", n_images=6)
    root = tmp_path / "proj"
    import_coco(images, annotations, root, dataset="small")
    return root


def _embeddings_page(project: Path) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    at.switch_page("pages/embeddings.py")
    return at.run()


def _progress_texts(at: AppTest) -> list[str]:
    return [bar.proto.text for bar in at.get("progress")]


def test_compute_embeddings_runs_in_the_background_with_counts(project: Path) -> None:
    at = _embeddings_page(project)
    assert not at.exception, at.exception
    (button,) = [b for b in at.button if b.label == "Compute embeddings now"]
    started = time.monotonic()
    button.click().run()
    returned_after = time.monotonic() - started
    assert not at.exception, at.exception
    # The page came back while the job runs: nothing embedded yet, a job queued or running, its bar shown.
    assert es.datasets_with_embeddings(Project(project), ["small"]) == []
    (job,) = actions.list_actions(Project(project), "metrics")
    assert job["status"] in job_state.ACTIVE and job["options"] == {"embeddings": True, "label_issues": True}
    assert len(_progress_texts(at)) == 1, "the running job's progress bar"
    assert not [b for b in at.button if b.label == "Compute embeddings now"], "no second start while it runs"
    assert returned_after < 30, returned_after

    seen_counts: list[tuple[int, int]] = []
    deadline = time.monotonic() + 240
    while actions.active_action(Project(project), "metrics") and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
        for text in _progress_texts(at):
            seen_counts += [
                (int(a.replace(",", "")), int(b.replace(",", ""))) for a, b in COUNTS.findall(text)
            ]
    (job,) = actions.list_actions(Project(project), "metrics")
    assert job["status"] == "succeeded", (job.get("error_line"), job_state.log_tail(job["dir"]))
    at.run()
    assert seen_counts and all(0 <= done <= total for done, total in seen_counts), seen_counts
    assert es.datasets_with_embeddings(Project(project), ["small"]) == ["small"]
    # What it reported: every object crop of the dataset (6 images × 2 squares), counted up to the end.
    events = job_state.read_progress(job["dir"])
    crops = [e for e in events if e.get("stage") == "embed objects · small"]
    assert crops and crops[-1]["done"] == crops[-1]["total"] == 12
    assert not at.get("progress") and at.get("plotly_chart"), "the map, once the embeddings are there"


def _job(status: str = "running") -> dict:
    return {"status": status, "phase": "Computing metrics"}


def _event(stage: str, done: int, total: int, at: float) -> dict:
    return {"event": STAGE_EVENT, "stage": stage, "done": done, "total": total, "time": at}


def test_eta_only_once_measured_then_smoothed_over_the_stage() -> None:
    one = [_event("embed images · a", 10, 100, 1000.0)]
    assert actions.estimate_eta(_job(), one, now=1001.0) is None  # no interval yet
    two = [*one, _event("embed images · a", 20, 100, 1010.0)]
    assert actions.estimate_eta(_job(), two, now=1010.0) is None  # one interval is noise
    # A slow batch (20 s for 10 items after 1 s/item) moves the estimate by the stage mean, not to 2 s/item.
    three = [*two, _event("embed images · a", 30, 100, 1030.0)]
    assert actions.estimate_eta(_job(), three, now=1030.0) == pytest.approx(70 * 1.5)
    assert actions.estimate_eta(_job(), three, now=1040.0) == pytest.approx(70 * 1.5 - 10)
    assert actions.estimate_eta(_job(), three, now=9999.0) == 0.0  # never below 0
    # A new stage starts unmeasured; an ended job has none.
    four = [*three, _event("embed objects · a", 5, 50, 1031.0)]
    assert actions.estimate_eta(_job(), four, now=1031.0) is None
    assert actions.estimate_eta(_job("succeeded"), three, now=1030.0) is None


def test_only_known_actions_and_options(project: Path) -> None:
    from store.errors import InputError

    with pytest.raises(InputError, match="unknown action"):
        actions.start_action(project, "rm -rf")
    with pytest.raises(InputError, match="unknown option"):
        actions.start_action(project, "metrics", shell=True)
    assert not actions.list_actions(Project(project))
    assert not job_state.list_jobs(Project(project)), "actions are not training jobs"


def test_job_json_is_the_one_state_source(project: Path) -> None:
    """The page reads the same job.json the runner writes: a dead runner shows as failed, not running."""
    folder = actions.actions_dir(Project(project)) / job_state.new_job_id()
    folder.mkdir(parents=True)
    (folder / job_state.JOB_FILE).write_text(
        json.dumps(
            {"id": folder.name, "action": "metrics", "status": "running", "pid": 2**22 + 7, "created_at": 0}
        )
    )
    (job,) = actions.list_actions(Project(project), "metrics")
    assert job["status"] == "failed" and "process died" in job["error"]
    assert actions.active_action(Project(project), "metrics") is None


def test_label_errors_page_scores_the_labels_in_the_background(project: Path) -> None:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    at.switch_page("pages/label_errors.py")
    at.run()
    assert not at.exception, at.exception
    assert at.button(key="action_start_metrics").label == "Score the labels now"
    at.button(key="action_start_metrics").click().run()
    (job,) = actions.list_actions(Project(project), "metrics")
    assert job["options"] == {"embeddings": False, "label_issues": True}
    assert job["status"] in job_state.ACTIVE and len(_progress_texts(at)) == 1
    deadline = time.monotonic() + 240
    while actions.active_action(Project(project), "metrics") and time.monotonic() < deadline:
        time.sleep(0.5)
    (job,) = actions.list_actions(Project(project), "metrics")
    assert job["status"] == "succeeded", (job.get("error_line"), job_state.log_tail(job["dir"]))
    stages = {e["stage"] for e in job_state.read_progress(job["dir"])}
    assert "label-error pass (datasets)" in stages
    at.run()
    assert not at.exception, at.exception
    assert not at.get("progress") and not [b for b in at.button if b.key == "action_start_metrics"]
    assert (project / "datasets" / "small" / "label_issues" / "meta.json").is_file()
