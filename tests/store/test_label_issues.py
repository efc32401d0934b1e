"""The label-error pass in a project: computed on import of predictions, reported, exported, fixed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli import main
from store import label_decisions
from store.label_issues import load_meta
from tests.conftest import REPO, cli_import, shared

YARDSTICK = REPO.parent / "shared" / "tools" / "label_errors"


def yardstick(script: str, **options: object) -> dict:
    """Run one of the yardstick's scripts with ``--name value`` per option; its last line of JSON."""
    path = YARDSTICK / script
    if not path.is_file():
        pytest.skip(f"label-error yardstick not available: {path}")
    args = [part for name, value in options.items() for part in (f"--{name}", str(value))]
    out = subprocess.run([sys.executable, str(path), *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def planted_project(
    dataset: str, work: Path, seed: int, name: str, *extra: str, predictions: bool = False
) -> tuple[Path, Path, Path]:
    """``dataset`` of ../shared/data with the yardstick's planted errors (seed), imported through the
    CLI as ``name`` into ``work/project`` (``extra`` import flags), and a detector's fake predictions
    written (imported as model ``det`` when ``predictions``). Returns (project, truth, predictions)."""
    source = shared(dataset)
    corrupted, truth, preds = work / "corrupted.json", work / "truth.json", work / "preds.json"
    coco = str(source / "annotations.json")
    yardstick("inject_errors.py", coco=coco, out=corrupted, truth=truth, seed=seed)
    yardstick("fake_predictions.py", coco=coco, out=preds, seed=seed)
    project = cli_import(source / "images", corrupted, work / "project", name, *extra)
    if predictions:
        assert (
            main(
                ["import", "predictions", str(preds), "--project", str(project), "--model", "det", "--quiet"]
            )
            == 0
        )
    return project, truth, preds


@pytest.fixture(scope="module")
def corrupted_fruits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """fruits_nuts with planted errors imported (no embeddings) plus a detector's predictions."""
    return planted_project("fruits_nuts", tmp_path_factory.mktemp("label_issues"), 1, "fruits")


def test_no_model_no_embeddings_still_scores_labels_by_geometry(corrupted_fruits, capsys):
    project, _, _ = corrupted_fruits
    assert main(["metrics", "--project", str(project)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"]["fruits"]["label_issues"]["evidence"] == ["geometry"]
    meta = load_meta(project, "fruits")
    assert meta["model"] is None and meta["evidence"] == ["geometry"]
    images = pd.read_parquet(project / "datasets" / "fruits" / "metrics" / "image__missing_label.parquet")
    assert images["value"].isna().all()  # no model: nothing can propose a missing box
    # unchanged inputs: the next run skips the pass
    assert main(["metrics", "--project", str(project)]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"]["fruits"]["label_issues"]["skipped"] is True


@pytest.fixture(scope="module")
def with_model(corrupted_fruits):
    project, truth, preds = corrupted_fruits
    assert (
        main(["import", "predictions", str(preds), "--project", str(project), "--model", "det", "--quiet"])
        == 0
    )
    return project, truth


def test_importing_predictions_rescored_the_labels_with_the_model(with_model, tmp_path):
    project, truth = with_model
    meta = load_meta(project, "fruits")
    assert meta["model"] == "det" and "predictions" in meta["evidence"]
    objects = pd.read_parquet(project / "datasets" / "fruits" / "label_issues" / "objects.parquet")
    errors = json.loads(truth.read_text())["errors"]
    swapped = {e["id"] for e in errors if e["kind"] == "swap"}
    clean = objects[~objects["object_id"].isin({e["id"] for e in errors})]
    flagged = objects[objects["object_id"].isin(swapped)]
    assert flagged["label_issue"].median() > clean["label_issue"].quantile(0.9)
    report = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "report", "--project", str(project), "--json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    issues = json.loads(report.stdout)["issues"]
    assert issues["likely_label_errors"] == int((objects["label_issue"] >= 0.5).sum()) > 0
    assert "images_missing_labels" in issues
    assert (
        main(
            [
                "export",
                "csv",
                "--project",
                str(project),
                "--out",
                str(tmp_path / "o.csv"),
                "--level",
                "object",
            ]
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "o.csv")
    for column in ("label_issue", "label_issue_kind", "label_fix", "suggested_category", "suggested_bbox_x"):
        assert column in table.columns
    relabels = table[table["label_fix"] == "relabel"]
    assert len(relabels) and (relabels["suggested_category"] != relabels["category"]).all()
    assert (
        main(
            ["export", "csv", "--project", str(project), "--out", str(tmp_path / "i.csv"), "--level", "image"]
        )
        == 0
    )
    assert pd.read_csv(tmp_path / "i.csv")["missing_label"].between(0, 1).all()


def _finding(row, fix: str, **extra) -> dict:
    return {
        "finding": "object",
        "image_id": int(row.image_id),
        "item_id": int(row.object_id),
        "fix": fix,
        **extra,
    }


def test_accepted_fixes_are_applied_exactly_and_the_file_reimports(with_model, tmp_path):
    project, _ = with_model
    objects = pd.read_parquet(project / "datasets" / "fruits" / "label_issues" / "objects.parquet")
    rows = list(objects.sort_values("object_id").itertuples())
    relabel, moved, deleted, rejected, undone = rows[0], rows[1], rows[2], rows[3], rows[4]
    new_class = 2 if relabel.category_id != 2 else 3
    box = {"bbox_x": 10.0, "bbox_y": 20.0, "bbox_w": 30.0, "bbox_h": 40.0}
    label_decisions.decide(
        project, "fruits", [_finding(relabel, "relabel", category_id=new_class)], "accepted"
    )
    label_decisions.decide(project, "fruits", [_finding(moved, "replace_box", **box)], "accepted")
    label_decisions.decide(
        project, "fruits", [_finding(deleted, "delete"), _finding(undone, "delete")], "accepted"
    )
    label_decisions.decide(project, "fruits", [_finding(rejected, "delete")], "rejected")
    assert label_decisions.undo(project, "fruits", [_finding(undone, "delete")]) == 1
    image = int(rows[5].image_id)
    label_decisions.decide(
        project, "fruits",
        [{"finding": "candidate", "image_id": image, "item_id": 7, "fix": "add", "category_id": 1,
          "bbox_x": 5.0, "bbox_y": 6.0, "bbox_w": 50.0, "bbox_h": 60.0}],
        "accepted",
    )  # fmt: skip
    stored = label_decisions.decisions(project, "fruits")
    assert sorted(stored["decision"]) == ["accepted"] * 4 + ["rejected"]

    plain, fixed = tmp_path / "plain.json", tmp_path / "fixed.json"
    assert (
        main(["export", "coco", "--project", str(project), "--dataset", "fruits", "--out", str(plain)]) == 0
    )
    assert main(["export", "coco", "--project", str(project), "--dataset", "fruits", "--out", str(fixed),
                 "--apply-fixes"]) == 0  # fmt: skip
    before = {a["id"]: a for a in json.loads(plain.read_text())["annotations"]}
    after_file = json.loads(fixed.read_text())
    after = {a["id"]: a for a in after_file["annotations"]}
    assert after_file["info"]["cocolens_export"]["fixes_applied"] == {
        "relabel": 1, "replace_box": 1, "delete": 1, "add": 1
    }  # fmt: skip
    assert after[relabel.object_id]["category_id"] == new_class
    assert after[moved.object_id]["bbox"] == [10.0, 20.0, 30.0, 40.0]
    polygon = after[moved.object_id]["segmentation"][0]
    assert min(polygon[0::2]) >= 9.0 and max(polygon[0::2]) <= 41.0  # the polygon moved with its box
    assert deleted.object_id not in after and undone.object_id in after and rejected.object_id in after
    added = [a for i, a in after.items() if i not in before]
    assert (
        len(added) == 1 and added[0]["id"] == max(before) + 1 and added[0]["bbox"] == [5.0, 6.0, 50.0, 60.0]
    )
    untouched = set(before) - {relabel.object_id, moved.object_id, deleted.object_id}
    assert all(after[i] == before[i] for i in untouched)  # nothing else changed

    reimport = tmp_path / "again"
    src = shared("fruits_nuts", "images")
    assert main(["import", "coco", "--images", str(src), "--annotations", str(fixed), "--project", str(reimport),
                 "--dataset", "fixed", "--quiet"]) == 0  # fmt: skip
    counts = json.loads(
        subprocess.run(
            [sys.executable, str(REPO / "cli.py"), "report", "--project", str(reimport), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout  # fmt: skip
    )["datasets"]["fixed"]
    assert counts["objects"] == len(after)


def test_decisions_are_mirrored_as_tags_and_undo_removes_them(with_model):
    from store.tags import tags_of

    project, _ = with_model
    objects = pd.read_parquet(project / "datasets" / "fruits" / "label_issues" / "objects.parquet")
    row = next(objects.sort_values("object_id", ascending=False).itertuples())
    label_decisions.decide(project, "fruits", [_finding(row, "delete")], "accepted")
    assert label_decisions.ACCEPTED_TAG in tags_of(project, "fruits", int(row.image_id), int(row.object_id))
    label_decisions.decide(project, "fruits", [_finding(row, "delete")], "rejected")
    tags = tags_of(project, "fruits", int(row.image_id), int(row.object_id))
    assert label_decisions.REJECTED_TAG in tags and label_decisions.ACCEPTED_TAG not in tags
    label_decisions.undo(project, "fruits", [_finding(row, "delete")])
    assert not {label_decisions.ACCEPTED_TAG, label_decisions.REJECTED_TAG} & set(
        tags_of(project, "fruits", int(row.image_id), int(row.object_id))
    )
