"""Predictions import: stats equal pycocotools', per-prediction lookups, bad input changes nothing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli import main
from store.queries import ProjectReader
from tests.conftest import cli_import, shared
from tests.metrics.generated_predictions import generate_predictions
from tests.store.test_malformed_coco import snapshot

STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def pycocotools_stats(coco: dict, results: list[dict], iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(coco))
        gt.createIndex()
        dt = gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


@pytest.fixture(scope="module")
def fruits(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("preds")
    ann = shared("fruits_nuts", "annotations.json")
    project = folder / "project"
    cli_import(shared("fruits_nuts", "images"), ann, project, "fruits")
    coco = json.loads(ann.read_text())
    results = generate_predictions(coco, seed=3, with_segm=True)
    preds = folder / "preds.json"
    preds.write_text(json.dumps(results))
    assert (
        main(["import", "predictions", str(preds), "--project", str(project), "--model", "gen", "--quiet"])
        == 0
    )
    return {"project": project, "coco": coco, "results": results, "folder": folder}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_stats_equal_pycocotools(fruits, iou_type):
    expected = pycocotools_stats(fruits["coco"], fruits["results"], iou_type)
    stored = json.loads((fruits["project"] / "models" / "gen" / "eval.json").read_text())[iou_type]["stats"]
    assert [stored[name] for name in STATS] == pytest.approx(expected, abs=1e-9)


def test_report_carries_model_stats(fruits, capsys):
    assert main(["report", "--project", str(fruits["project"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model = report["models"]["gen"]
    assert model["dataset"] == "fruits" and set(model["bbox"]) == set(STATS) and model["segm"] is not None


def test_per_prediction_rows_for_every_threshold(fruits):
    reader = ProjectReader(fruits["project"])
    matches = reader.df("SELECT * FROM prediction_matches WHERE iou_type = 'bbox'")
    assert len(matches) == len(fruits["results"])
    for tag in ("50", "75", "95"):
        assert {f"tp_{tag}", f"matched_object_id_{tag}", f"reason_{tag}"} <= set(matches.columns)
    # a stricter threshold never adds true positives
    assert (matches["tp_75"] <= matches["tp_50"]).all() and (matches["tp_95"] <= matches["tp_75"]).all()
    fps = matches[~matches["tp_50"] & matches["evaluated"]]
    assert set(fps["reason_50"]) <= {
        "duplicate",
        "class_confusion",
        "localisation",
        "class_and_localisation",
        "background",
    }
    assert (fps["reason_50"] != "").all() and len(fps) > 0
    tps = matches[matches["tp_50"]]
    assert (tps["matched_object_id_50"] >= 0).all()
    objects = reader.df("SELECT * FROM gt_matches WHERE iou_type = 'bbox'")
    assert len(objects) == 165
    missed = objects[objects["missed_50"]]
    assert set(missed["reason_50"]) <= {"missed", "mislocalised", "misclassified"} and len(missed) > 0


def test_export_csv_prediction_level(fruits, tmp_path):
    out = tmp_path / "preds.csv"
    assert (
        main(
            ["export", "csv", "--project", str(fruits["project"]), "--out", str(out), "--level", "prediction"]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert len(table) == len(fruits["results"])
    assert {
        "dataset",
        "image_id",
        "prediction_id",
        "model",
        "score",
        "tp",
        "object_id",
        "file_name",
        "category",
    } <= set(table.columns)
    assert table.loc[table["tp"], "object_id"].ge(0).all()


def _bad_cases(results: list[dict]) -> list[tuple[str, object, str]]:
    def edit(index: int, **changes):
        copy = json.loads(json.dumps(results))
        for key, value in changes.items():
            if value is KeyError:
                copy[index].pop(key, None)
            else:
                copy[index][key] = value
        return copy

    return [
        ("empty-list", [], "holds no predictions"),
        ("not-a-list", {"x": 1}, "expected a JSON list"),
        (
            "unknown-image",
            edit(2, image_id=10_000),
            "predictions[2]: field 'image_id': no image has id 10000",
        ),
        (
            "unknown-category",
            edit(3, category_id=99),
            "predictions[3]: field 'category_id': no category has id 99",
        ),
        ("missing-score", edit(4, score=KeyError), "predictions[4]: field 'score': missing"),
        ("nan-score", edit(4, score=float("nan")), "predictions[4]: field 'score'"),
        ("negative-score", edit(4, score=-0.5), "field 'score': expected a finite number ≥ 0"),
        ("string-score", edit(4, score="high"), "field 'score'"),
        ("short-bbox", edit(5, bbox=[1, 2, 3]), "predictions[5]: field 'bbox'"),
        ("negative-bbox", edit(5, bbox=[1, 2, -3, 4]), "field 'bbox': negative width or height"),
        ("no-geometry", edit(5, bbox=KeyError, segmentation=KeyError), "needs a bbox or a segmentation"),
        ("rle-bad-size", edit(6, segmentation={"size": [5, 5], "counts": "00"}), "field 'segmentation.size'"),
        ("rle-bad-chars", edit(6, segmentation={"size": [600, 800], "counts": "~~ ~"}), "RLE alphabet"),
        ("odd-polygon", edit(6, segmentation=[[1, 2, 3, 4, 5, 6, 7]]), "field 'segmentation': polygon 0"),
        ("no-image-reference", edit(7, image_id=KeyError), "field 'image_id': missing"),
        ("unknown-file-name", edit(7, image_id=KeyError, file_name="nope.jpg"), "field 'file_name'"),
    ]


def test_bad_predictions_leave_project_unchanged(fruits, capsys):
    before = snapshot(fruits["project"])
    cases = _bad_cases(fruits["results"])
    for case_id, payload, fragment in cases:
        bad = Path(fruits["folder"]) / f"{case_id}.json"
        bad.write_text(json.dumps(payload))
        code = main(
            [
                "import",
                "predictions",
                str(bad),
                "--project",
                str(fruits["project"]),
                "--model",
                "bad",
                "--quiet",
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2, case_id
        assert len(err.splitlines()) == 1 and str(bad) in err and fragment in err, (case_id, err)
    assert snapshot(fruits["project"]) == before
    assert len(cases) >= 16


def test_images_named_by_file_name_or_hash(fruits, tmp_path):
    reader = ProjectReader(fruits["project"])
    images = reader.df("SELECT image_id, file_name, content_hash FROM images")
    by_id = images.set_index("image_id")
    results = json.loads(json.dumps(fruits["results"]))
    for k, rec in enumerate(results):
        row = by_id.loc[rec.pop("image_id")]
        if k % 2:
            rec["file_name"] = row["file_name"]
        else:
            rec["content_hash"] = row["content_hash"]
    path = tmp_path / "named.json"
    path.write_text(json.dumps(results))
    assert (
        main(
            [
                "import",
                "predictions",
                str(path),
                "--project",
                str(fruits["project"]),
                "--model",
                "named",
                "--quiet",
            ]
        )
        == 0
    )
    stats = json.loads((fruits["project"] / "models" / "named" / "eval.json").read_text())
    original = json.loads((fruits["project"] / "models" / "gen" / "eval.json").read_text())
    assert np.allclose(list(stats["bbox"]["stats"].values()), list(original["bbox"]["stats"].values()))
