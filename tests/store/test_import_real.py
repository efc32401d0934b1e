"""Importing the real datasets: the figures the acceptance criteria name, through the CLI contract."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from cli import main
from store.report import SUMMARY_KEYS
from tests.conftest import REPO, import_argv, shared


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory):
    project = tmp_path_factory.mktemp("real") / "project"
    taco = shared("taco")
    jobs = [
        (shared("fruits_nuts", "images"), shared("fruits_nuts", "annotations.json"), "fruits_nuts"),
        (shared("blood_cells", "images"), shared("blood_cells", "annotations.json"), "blood_cells"),
        (taco, taco / "annotations.json", "taco_official"),
        (taco, taco / "annotations_unofficial.json", "taco_unofficial"),
    ]
    for images, annotation_file, name in jobs:
        code = main(import_argv(images, annotation_file, project, name, "--quiet"))
        assert code == 0, name
    return project


@pytest.fixture(scope="module")
def report(real_project):
    out = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "report", "--project", str(real_project), "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout)


def test_dataset_counts(report):
    ds = report["datasets"]
    assert (ds["fruits_nuts"]["images"], ds["fruits_nuts"]["objects"], ds["fruits_nuts"]["categories"]) == (
        18,
        165,
        3,
    )
    assert (
        ds["blood_cells"]["images"],
        ds["blood_cells"]["objects"],
        ds["blood_cells"]["categories_used"],
    ) == (240, 5638, 2)
    assert ds["blood_cells"]["categories"] == 3  # the unused placeholder class is still listed
    assert (ds["taco_official"]["images"], ds["taco_official"]["objects"]) == (1500, 4784)
    assert ds["taco_official"]["categories_used"] == 59
    assert ds["taco_official"]["missing_images"] == 1500
    assert ds["taco_unofficial"]["images"] == 3831 and ds["taco_unofficial"]["objects"] == 8334
    assert ds["fruits_nuts"]["missing_images"] == 0 and ds["fruits_nuts"]["unreadable_images"] == 0


def test_taco_geometry_without_pixels(report):
    metrics = report["datasets"]["taco_official"]["metrics"]
    assert metrics["area"]["median"] == pytest.approx(7.99e6, rel=0.002)
    assert metrics["aspect_ratio"]["median"] == pytest.approx(0.75, abs=1e-9)
    assert metrics["object_area_relative"]["median"] == pytest.approx(0.00176, rel=0.03)
    assert metrics["area"]["count"] == 1500
    assert "brightness" not in metrics or metrics["brightness"]["count"] == 0  # no pixels: null, not counted


def test_report_contract(report):
    required = {
        "width",
        "height",
        "area",
        "aspect_ratio",
        "brightness",
        "contrast",
        "sharpness",
        "object_area",
        "object_area_relative",
        "object_aspect_ratio",
        "object_count",
        "frame_object_density",
        "border_closeness",
        "annotation_duplicate_iou",
    }
    assert required <= set(report["metrics"])
    for name, summary in report["metrics"].items():
        assert summary["level"] in {"image", "object", "prediction"}, name
        assert set(summary) == {"level", *SUMMARY_KEYS}
    assert report["metrics"]["object_area"]["level"] == "object"
    assert report["metrics"]["brightness"]["count"] == 18 + 240
    assert "exact_duplicate_images" in report["issues"] and "near_duplicate_groups" in report["issues"]
    assert report["issues"]["missing_images"] == 1500 + 3831
    assert report["issues"]["near_duplicate_groups"] > 0  # blood_cells holds augmented triplicates


def test_export_csv_levels(real_project, tmp_path):
    out = tmp_path / "objects.csv"
    assert (
        main(
            [
                "export",
                "csv",
                "--project",
                str(real_project),
                "--out",
                str(out),
                "--level",
                "object",
                "--dataset",
                "fruits_nuts",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 165
    assert {"dataset", "image_id", "object_id", "file_name", "category", "object_area_relative"} <= set(
        rows[0]
    )
    assert {r["category"] for r in rows} == {"date", "fig", "hazelnut"}
    original = json.loads(shared("fruits_nuts", "annotations.json").read_text())
    assert {int(r["object_id"]) for r in rows} == {a["id"] for a in original["annotations"]}
    out_images = tmp_path / "images.csv"
    assert (
        main(["export", "csv", "--project", str(real_project), "--out", str(out_images), "--level", "image"])
        == 0
    )
    image_rows = list(csv.DictReader(out_images.open()))
    assert len(image_rows) == 18 + 240 + 1500 + 3831
    assert {"brightness", "width", "content_hash", "object_count"} <= set(image_rows[0])
