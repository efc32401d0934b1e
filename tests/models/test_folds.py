"""`cocolens train --folds K`: every image predicted once, by the model whose training folds exclude it."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from cli import main
from models import job_launch, job_state
from models.folds import assign_folds, oof_model_name
from store.project import Project
from tests.models.coco_frames import SHARED_DATA

FOLD_TOML = """
model = "maskrcnn_mobilenet_v2_fpn"
pretrained_backbone = false
max_side = 128
epochs = 1
batch_size = 4
workers = 0
device = "cpu"
log_every = 1
score_threshold = 0.0
seed = 3
"""


def test_fold_assignment_is_seeded_balanced_and_complete():
    ids = list(range(0, 18))
    a = assign_folds(ids, 3, seed=0)
    assert sorted(a) == ids and a == assign_folds(reversed(ids), 3, seed=0)
    assert sorted(list(a.values()).count(f) for f in range(3)) == [6, 6, 6]
    assert a != assign_folds(ids, 3, seed=1)
    with pytest.raises(ValueError, match="5 folds need at least 5 usable images, the dataset has 4"):
        assign_folds(range(4), 5, 0)
    assert oof_model_name("fruit", 3) == "fruit-oof3" == oof_model_name("fruit-oof3", 3)


@pytest.mark.slow
def test_three_folds_on_fruits_nuts_cover_every_image_once_from_a_model_that_never_saw_it(tmp_path):
    root = SHARED_DATA / "fruits_nuts"
    if not (root / "annotations.json").exists():
        pytest.skip(f"shared test data missing: {root}")
    project = tmp_path / "project"
    args = [
        "import",
        "coco",
        "--images",
        str(root / "images"),
        "--annotations",
        str(root / "annotations.json"),
    ]
    assert main([*args, "--project", str(project), "--dataset", "fruits", "--quiet", "--workers", "1"]) == 0
    config = tmp_path / "folds.toml"
    config.write_text(FOLD_TOML)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            [
                "train",
                "--project",
                str(project),
                "--train",
                "fruits",
                "--val",
                "fruits",
                "--config",
                str(config),
                "--folds",
                "3",
                "--name",
                "fruit",
            ]  # fmt: skip
        )
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue())
    assert summary["status"] == "succeeded" and summary["model"] == "fruit-oof3"
    job_dir = Project(project).jobs_dir / summary["job"]
    record = json.loads((job_dir / "folds.json").read_text())
    all_ids = set(range(18))  # fruits_nuts image ids are 0..17
    assert record["k"] == 3 and {int(i) for i in record["assignment"]} == all_ids
    assert record["validation"] == "held-out fold"
    predicted_by: dict[int, int] = {}
    for fold in record["folds"]:
        held = set(fold["predicted_image_ids"])
        trained_on = set(fold["train_image_ids"])
        assert held == {int(i) for i, f in record["assignment"].items() if f == fold["fold"]}
        assert not held & trained_on and held | trained_on == all_ids  # trained on the other folds only
        assert len(held) == 6
        for image_id in held:
            assert image_id not in predicted_by  # exactly once
            predicted_by[image_id] = fold["fold"]
        fold_results = json.loads((job_dir / f"fold_{fold['fold']}" / job_state.RESULTS_FILE).read_text())
        assert {r["image_id"] for r in fold_results} == held  # each fold's model predicts its own fold
        assert fold["checkpoint"] == str(job_dir / f"fold_{fold['fold']}" / "best.pt")
    assert set(predicted_by) == all_ids
    union = json.loads((job_dir / job_state.RESULTS_FILE).read_text())
    assert {r["image_id"] for r in union} == all_ids
    assert len(union) == sum(f["predictions"] for f in record["folds"])
    # imported as one model on the train dataset, and the label-error pass read it
    meta = Project(project).model_meta("fruit-oof3")
    assert meta["dataset"] == "fruits" and meta["job"] == summary["job"]
    assert summary["imported"]["label_issues"] is not None


def test_folds_config_errors_are_one_line():
    from store.errors import InputError

    with pytest.raises(InputError, match="field 'folds': must be 0 \\(off\\) or >= 2, got 1"):
        job_launch.prepare_config(None, folds=1)
    with pytest.raises(InputError, match="field 'folds': does not combine with overfit_images"):
        job_launch.prepare_config(None, folds=3, overfit_images=2)
