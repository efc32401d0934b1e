"""`import predictions` against a dataset replaced at the same time (issue 18, item 6).

Before: the ground truth was read before taking the write lock, so with a concurrent `import coco`
replacing the dataset both exited 0 and the model kept AP 1.0 against labels that no longer existed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from store.predictions_import import model_is_stale
from store.project import Project, replace_dir_atomic
from tests.reliability.guarded import REPO
from tests.reliability.hostile import run_cli


def _dataset(folder: Path, box: list[int]) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": box[2] * box[3]}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    ann = folder / "ann.json"
    ann.write_text(json.dumps(coco))
    return ann


def _import_coco(capsys, folder: Path, ann: Path, project: Path) -> None:
    argv = ["import", "coco", "--images", str(folder / "images"), "--annotations", str(ann)]
    code, _, err = run_cli(
        capsys, [*argv, "--project", str(project), "--dataset", "d", "--quiet", "--workers", "1"]
    )
    assert code == 0, err


def test_predictions_are_matched_against_the_dataset_present_when_the_lock_is_taken(tmp_path: Path, capsys):
    project = tmp_path / "project"
    _import_coco(capsys, tmp_path / "a", _dataset(tmp_path / "a", [10, 10, 20, 20]), project)
    # version B of the same dataset, built aside: the labelled object moved
    other = tmp_path / "other"
    _import_coco(capsys, tmp_path / "b", _dataset(tmp_path / "b", [50, 30, 20, 20]), other)
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}])
    )

    with Project(project).writing():  # a concurrent `import coco` holds the lock...
        child = subprocess.Popen(
            [sys.executable, "-m", "cli", "import", "predictions", str(results), "--project", str(project)]
            + ["--model", "m", "--quiet"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(4)  # ...while the predictions import starts (and, before, read version A here)
        replace_dir_atomic(other / "datasets" / "d", project / "datasets" / "d")  # ...and commits B
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert json.loads(out)["bbox"]["AP"] == 0.0  # matched against B: the box is now a false positive
    assert not model_is_stale(Project(project), "m")


def _project_with_model(tmp_path: Path, capsys) -> Path:
    """Dataset d (one labelled box) and model m predicting exactly that box."""
    project = tmp_path / "project"
    _import_coco(capsys, tmp_path / "a", _dataset(tmp_path / "a", [10, 10, 20, 20]), project)
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}])
    )
    code, _, err = run_cli(
        capsys, ["import", "predictions", str(results), "--project", str(project), "--model", "m"]
    )
    assert code == 0, err
    return project


def test_a_model_is_stale_once_its_dataset_is_imported_again(tmp_path: Path, capsys):
    project = _project_with_model(tmp_path, capsys)
    assert not model_is_stale(Project(project), "m")
    images, ann = tmp_path / "b" / "images", _dataset(tmp_path / "b", [50, 30, 20, 20])
    argv = ["import", "coco", "--images", str(images), "--annotations", str(ann), "--project", str(project)]
    code, out, err = run_cli(capsys, [*argv, "--dataset", "d", "--quiet", "--workers", "1"])
    assert code == 0, err
    assert json.loads(out)["stale_models"] == ["m"]  # said at once, by the import that made it stale
    assert model_is_stale(Project(project), "m")
    # ...and said wherever the model's figures are read: the report and the model pages' picker
    from store.model_queries import models_table
    from store.queries import ProjectReader
    from store.report import build_report

    assert build_report(project)["models"]["m"]["stale"] is True
    assert models_table(ProjectReader(project)).set_index("model").loc["m", "stale"]


def test_the_model_pages_warn_about_a_stale_model(tmp_path: Path, capsys):
    from streamlit.testing.v1 import AppTest

    project = _project_with_model(tmp_path, capsys)

    def warnings() -> list[str]:
        app = AppTest.from_file(str(REPO / "pages" / "model_quality.py"), default_timeout=120)
        app.session_state["project"] = str(project)
        app.run()
        assert not app.exception, app.exception
        return [w.value for w in app.warning]

    assert not any("imported again" in text for text in warnings())
    _import_coco(capsys, tmp_path / "b", _dataset(tmp_path / "b", [50, 30, 20, 20]), project)
    assert any("imported again after m's predictions" in text for text in warnings())
