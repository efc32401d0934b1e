"""Odd input that used to be accepted without a word is now refused, flagged or said (issue 18, 9–14)."""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import import_argv
from tests.reliability.hostile import assert_refused, jpeg_bytes, run_cli


def _coco(
    images: list[dict], annotations: list[dict] | None = None, categories: list[dict] | None = None
) -> dict:
    return {
        "images": images,
        "annotations": annotations or [],
        "categories": categories or [{"id": 1, "name": "thing"}],
    }


def _import(
    capsys, tmp_path: Path, coco: dict | str, images: Path | None = None
) -> tuple[int, str, str, Path]:
    images = images or tmp_path / "images"
    images.mkdir(exist_ok=True)
    ann = tmp_path / "ann.json"
    ann.write_text(coco if isinstance(coco, str) else json.dumps(coco))
    project = tmp_path / "project"
    code, out, err = run_cli(capsys, import_argv(images, ann, project, "d", "--quiet", "--workers", "1"))
    return code, out, err, project


def _images_table(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / "d" / "images.parquet").set_index("image_id")


# ----- 9. duplicate keys, duplicate category names ------------------------------------------------


@pytest.fixture(params=["json", "streaming"])
def parse_path(request, monkeypatch) -> str:
    """Both readers: json.loads below STREAM_ABOVE_BYTES, ijson above it."""
    if request.param == "streaming":
        monkeypatch.setattr("store.coco_reader.STREAM_ABOVE_BYTES", 0)
    return request.param


def test_duplicate_top_level_key_is_refused(tmp_path: Path, capsys, parse_path: str):
    image = json.dumps([{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}])
    ann = json.dumps([{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}])
    text = (
        f'{{"images": {image}, "annotations": {ann}, "categories": [{{"id": 1, "name": "t"}}], '
        '"annotations": []}'
    )
    (tmp_path / "images").mkdir()
    (tmp_path / "ann.json").write_text(text)
    project = tmp_path / "project"
    argv = import_argv(tmp_path / "images", tmp_path / "ann.json", project)
    assert_refused(
        capsys,
        argv,
        project,
        ["ann.json", "top level", "'annotations'", "twice"],
    )


def test_duplicate_key_in_a_record_is_refused(tmp_path: Path, capsys, parse_path: str):
    text = (
        '{"images": [{"id": 1, "id": 2, "file_name": "a.jpg", "width": 8, "height": 6}], '
        '"annotations": [], "categories": [{"id": 1, "name": "t"}]}'
    )
    (tmp_path / "images").mkdir()
    (tmp_path / "ann.json").write_text(text)
    project = tmp_path / "project"
    argv = import_argv(tmp_path / "images", tmp_path / "ann.json", project)
    assert_refused(capsys, argv, project, ["ann.json", "'id' appears twice"])


def test_a_number_of_5000_digits_is_one_line(tmp_path: Path, capsys, parse_path: str):
    text = json.dumps(_coco([{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}]))
    text = text.replace('"id": 1,', '"id": 1' + "0" * 5000 + ",", 1)
    (tmp_path / "images").mkdir()
    (tmp_path / "ann.json").write_text(text)
    project = tmp_path / "project"
    argv = import_argv(tmp_path / "images", tmp_path / "ann.json", project)
    err = assert_refused(capsys, argv, project, ["ann.json", "4300 digits"])
    assert "sys.set_int_max_str_digits" not in err


def test_categories_sharing_a_name_are_kept_apart_and_warned_about(tmp_path: Path, capsys):
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
        [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 2, 2]}],
        [{"id": 1, "name": "bottle"}, {"id": 2, "name": "bottle"}],
    )
    code, out, err, project = _import(capsys, tmp_path, coco)
    assert code == 0, err
    assert json.loads(out)["warnings"] == {"categories_sharing_a_name_with_another": 1}
    meta = json.loads((project / "datasets" / "d" / "dataset.json").read_text())
    assert meta["warnings"]["categories_sharing_a_name_with_another"] == 1
    categories = pd.read_parquet(project / "datasets" / "d" / "categories.parquet")
    assert sorted(categories["category_id"]) == [1, 2]
    # exports keep them apart: the name alone would make the two bottles one class downstream
    from store.csv_export import export_csv

    out = tmp_path / "objects.csv"
    assert export_csv(project, out, "object") == 1
    row = pd.read_csv(out).iloc[0]
    assert (row["category"], row["category_id"]) == ("bottle", 2)


# ----- 10. areas and scores out of range ------------------------------------------------------------


def test_area_larger_than_the_image_is_flagged(tmp_path: Path, capsys):
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 1e12},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "area": 100},
        ],
    )
    code, _, err, project = _import(capsys, tmp_path, coco)
    assert code == 0, err
    flags = pd.read_parquet(project / "datasets" / "d" / "metrics" / "object__invalid_geometry.parquet")
    assert flags.sort_values("object_id")["value"].tolist() == [1.0, 0.0]


# ----- 11. predictions where only some carry masks ------------------------------------------------


def test_predictions_where_half_carry_masks_say_why_segm_is_not_evaluated(tmp_path: Path, capsys):
    ring = [[10, 10, 30, 10, 30, 30, 10, 30]]
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}],
        [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "area": 400,
                "segmentation": ring,
            }
        ],
    )
    code, _, err, project = _import(capsys, tmp_path, coco)
    assert code == 0, err
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9, "segmentation": ring},
        {"image_id": 1, "category_id": 1, "bbox": [40, 10, 20, 20], "score": 0.5},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    code, out, err = run_cli(
        capsys, ["import", "predictions", str(path), "--project", str(project), "--model", "m"]
    )
    assert code == 0, err
    summary = json.loads(out)
    assert "segm" not in summary
    assert any("1 of 2 predictions carry no segmentation" in note for note in summary["notes"])
    assert json.loads((project / "models" / "m" / "model.json").read_text())["notes"] == summary["notes"]


# ----- 12. Unicode normalisation, control characters in names ------------------------------------


def test_nfd_name_on_disk_matches_the_nfc_name_in_the_json(tmp_path: Path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    name = "caf\u00e9.jpg"  # NFC in the JSON
    (images / unicodedata.normalize("NFD", name)).write_bytes(jpeg_bytes(80, 60))  # NFD on disk (macOS)
    code, _, err, project = _import(
        capsys, tmp_path, _coco([{"id": 1, "file_name": name, "width": 80, "height": 60}])
    )
    assert code == 0, err
    assert _images_table(project).loc[1, "status"] == "ok"


def test_a_newline_in_a_missing_file_name_is_escaped_in_the_message(tmp_path: Path, capsys):
    coco = _coco([{"id": 1, "file_name": "a\nb.jpg", "width": 80, "height": 60}])
    code, _, err, project = _import(capsys, tmp_path, coco)
    assert code == 0, err
    row = _images_table(project).loc[1]
    assert row["status"] == "missing"
    assert "\n" not in row["error"] and "a\\nb.jpg" in row["error"]


# ----- 13. a real 108 MP photo ------------------------------------------------------------------


def _large_jpeg(width: int, height: int) -> bytes:
    ramp = (
        np.linspace(0, 255, width, dtype=np.float32)[None, :]
        + np.linspace(0, 60, height, dtype=np.float32)[:, None]
    )
    pixels = np.repeat(np.clip(ramp, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_108_megapixel_photo_is_decoded_at_reduced_scale(tmp_path: Path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "big.jpg").write_bytes(_large_jpeg(12000, 9000))
    code, _, err, project = _import(
        capsys, tmp_path, _coco([{"id": 1, "file_name": "big.jpg", "width": 12000, "height": 9000}])
    )
    assert code == 0, err
    row = _images_table(project).loc[1]
    assert (row["status"], row["error"]) == ("ok", "")
    assert (row["decoded_width"], row["decoded_height"]) == (12000, 9000)
    brightness = pd.read_parquet(project / "datasets" / "d" / "metrics" / "image__brightness.parquet")
    assert brightness["value"].notna().all()


def test_a_jpeg_header_claiming_far_more_pixels_than_its_file_holds_stays_refused(tmp_path: Path):
    """The guard stays for headers and sizes that disagree: SOF of 30000×30000 in a 20 kB file."""
    from metrics.image import compute_image

    small = bytearray(jpeg_bytes(80, 60))
    sof = small.index(b"\xff\xc0")
    small[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") + (30000).to_bytes(2, "big")
    path = tmp_path / "liar.jpg"
    path.write_bytes(bytes(small))
    result = compute_image({"path": str(path), "width": 30000, "height": 30000})
    assert result["status"] == "unreadable" and "decompression bomb" in result["error"]


# ----- 14. decoded size differs from the record -------------------------------------------------


def test_decoded_size_that_differs_from_the_record_is_flagged(tmp_path: Path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "small.jpg").write_bytes(jpeg_bytes(80, 60))
    (images / "right.jpg").write_bytes(jpeg_bytes(80, 60))
    coco = _coco(
        [
            {"id": 1, "file_name": "small.jpg", "width": 800, "height": 600},
            {"id": 2, "file_name": "right.jpg", "width": 80, "height": 60},
        ]
    )
    code, out, err, project = _import(capsys, tmp_path, coco)
    assert code == 0, err
    table = _images_table(project)
    assert table.loc[1, "status"] == "ok" and "file 80×60, record 800×600" in table.loc[1, "error"]
    assert table.loc[2, "error"] == ""
    assert json.loads(out)["warnings"] == {"images_whose_file_size_differs_from_the_record": 1}
