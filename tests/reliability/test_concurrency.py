"""Readers and writers in different processes at once: nothing lost, nothing half-seen, no lock errors.

Already covered elsewhere (not repeated here): ProjectReader SQL counts during an import
(tests/store/test_resume_and_readers.py::test_reader_keeps_working_while_a_writer_imports) and two
threads tagging (tests/store/test_tags.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store import tags
from store.queries import ProjectReader
from tests.conftest import REPO, import_argv, write_small_coco
from tests.store.test_resume_and_readers import _big_dataset

LOCK_ERRORS = ("database is locked", "database is busy", "Traceback")


def _import(images: Path, ann: Path, project: Path, dataset: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "cli.py"),
        *import_argv(images, ann, project, dataset, "--quiet", "--workers", "1"),
    ]


def _start_import(images: Path, ann: Path, project: Path, dataset: str) -> subprocess.Popen:
    """The import in its own process, its output piped (read with communicate())."""
    command = _import(images, ann, project, dataset)
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    images, ann = write_small_coco(tmp_path / "src", n_images=4)
    root = tmp_path / "project"
    done = subprocess.run(_import(images, ann, root, "one"), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root


def _summary_counts(project: Path) -> tuple:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["project"] = str(project)
    at.run()
    assert not at.exception, at.exception
    counts = at.dataframe[0].value
    return tuple(zip(counts["dataset"], counts["images"], counts["objects"], strict=True))


@pytest.mark.slow
def test_app_pages_render_whole_states_while_an_import_writes(project, tmp_path):
    images, ann = _big_dataset(tmp_path / "big_src", n_images=40)
    proc = _start_import(images, ann, project, "big")
    reader = ProjectReader(project)
    rendered_during, seen = 0, set()
    while proc.poll() is None:
        seen.add(_summary_counts(project))
        summary = reader.metric_summary()
        brightness = summary[summary["metric"] == "brightness"]["count"].tolist()
        assert brightness in ([4], [44]), brightness  # a dataset's metrics appear all at once
        rendered_during += proc.poll() is None
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert rendered_during >= 1, "the import ended before the page rendered once during it"
    seen.add(_summary_counts(project))
    assert seen <= {(("one", 4, 8),), (("big", 40, 40), ("one", 4, 8))}, seen
    assert (("big", 40, 40), ("one", 4, 8)) in seen
    assert not any(text in out + err for text in LOCK_ERRORS)


TAGGER = """
import sys
from store.tags import add_tags
root, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for image_id in range(count):
    add_tags(root, "one", [image_id], None, tag)  # one transaction per tag, like clicks in the app
    add_tags(root, "one", [image_id], [image_id], "shared")  # both processes write the same rows
print("tagged", count)
"""


def test_two_processes_tagging_at_once_lose_nothing(project):
    count = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAGGER, str(project), tag, str(count)],
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("from_a", "from_b")
    ]
    reads = 0
    while any(p.poll() is None for p in procs):  # and a reader, like the app's tag filter
        counts = tags.tag_counts(project)
        assert set(counts["tag"]) <= {"from_a", "from_b", "shared"}
        reads += 1
        time.sleep(0.01)
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert out.strip() == f"tagged {count}"
        assert not any(text in out + err for text in LOCK_ERRORS), err
    assert reads > 0
    counts = tags.tag_counts(project).set_index("tag")
    assert counts.loc["from_a", "images"] == count and counts.loc["from_b", "images"] == count
    assert counts.loc["shared", "objects"] == count, "the same object tag from two writers is stored once"
    assert len(tags.tagged(project)) == 3 * count


@pytest.mark.slow
def test_training_job_import_and_readers_at_once(tmp_path):
    """A background job writes job.json, progress and its model while an import commits a dataset."""
    from models import job_launch, job_state
    from store.project import Project

    root = tmp_path / "project"
    for seed, (name, count) in enumerate((("tr", 4), ("va", 2))):
        images, ann = write_small_coco(tmp_path / f"src_{name}", n_images=count, seed=seed)
        done = subprocess.run(_import(images, ann, root, name), cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    from tests.models.test_jobs import FAST  # the smallest CPU training config the job tests use

    config = job_launch.prepare_config(None, **FAST)
    job_dir = Project(root).jobs_dir / job_launch.start_job(root, "tr", "va", config)
    try:
        images, ann = _big_dataset(tmp_path / "big_src", n_images=12)
        importer = _start_import(images, ann, root, "big")
        reader = ProjectReader(root)
        states = set()
        while importer.poll() is None or job_state.read_job(job_dir)["status"] in job_state.ACTIVE:
            job = job_state.read_job(job_dir)  # the Training page's reads
            job_state.read_progress(job_dir)
            states.add(job["status"])
            assert set(reader.datasets()) in ({"tr", "va"}, {"tr", "va", "big"})
            reader.dataset_counts()
            assert job["status"] != "failed", job.get("error")
            time.sleep(0.1)  # poll like the Training page, leaving the 2 cores to the writers
        out, err = importer.communicate()
        assert importer.returncode == 0, err
        job = job_state.read_job(job_dir)
        assert job["status"] == "succeeded", job.get("error")
        assert "running" in states
        assert reader.datasets() == ["big", "tr", "va"] and reader.models() == [job["model"]]
        assert reader.scalar("SELECT count(*) FROM predictions") == job["predictions"]
        log = (job_dir / job_state.LOG_FILE).read_text()
        assert not any(text in out + err + log for text in LOCK_ERRORS), log[-2000:]
        assert (
            json.loads((job_dir / job_state.JOB_FILE).read_text())["imported"]["predictions"]
            == job["predictions"]
        )
    finally:
        pid = job_state.read_job(job_dir).get("pid")
        if pid and job_state.process_alive(pid):
            import os
            import signal

            os.kill(pid, signal.SIGKILL)
