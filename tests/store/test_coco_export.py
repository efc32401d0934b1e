"""COCO export: ids, hashes and metrics kept; re-import gives the same counts; downscaling keeps labels aligned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import main
from metrics.geometry import object_rle, rle_to_mask, scale_segmentation
from store.coco_export import export_coco
from store.coco_import import import_coco
from store.queries import ProjectReader
from tests.conftest import shared, write_small_coco


@pytest.fixture(scope="module")
def fruits(fruits_project: Path) -> Path:
    return fruits_project


def test_full_export_reimports_to_the_same_counts_and_ids(fruits: Path, tmp_path: Path) -> None:
    out = tmp_path / "fruits.json"
    counts = export_coco(fruits, out, with_metrics=True)
    assert (counts["images"], counts["objects"], counts["categories"]) == (18, 165, 3)
    coco = json.loads(out.read_text())
    reader = ProjectReader(fruits)
    hashes = dict(reader.df("SELECT image_id, content_hash FROM images").itertuples(index=False))
    assert {im["id"]: im["cocolens_content_hash"] for im in coco["images"]} == hashes
    assert min(im["id"] for im in coco["images"]) == 0  # fruits_nuts ids start at 0 and are kept
    original = json.loads((shared("fruits_nuts") / "annotations.json").read_text())
    assert sorted(a["id"] for a in coco["annotations"]) == sorted(a["id"] for a in original["annotations"])
    assert {c["name"] for c in coco["categories"]} == {"date", "fig", "hazelnut"}
    assert 0 < coco["images"][0]["cocolens_metrics"]["brightness"] < 1
    assert coco["annotations"][0]["cocolens_metrics"]["object_area"] > 0
    summary = import_coco(
        shared("fruits_nuts") / "images", out, tmp_path / "again", dataset="again", workers=2
    )
    assert (summary["images"], summary["objects"], summary["categories"], summary["missing_images"]) == (
        18,
        165,
        3,
        0,
    )


def test_where_exports_the_matching_subset(fruits: Path, tmp_path: Path) -> None:
    out = tmp_path / "dates.json"
    counts = export_coco(fruits, out, where="category = 'date'")
    coco = json.loads(out.read_text())
    assert {a["category_id"] for a in coco["annotations"]} == {1}
    reader = ProjectReader(fruits)
    expected = reader.scalar("SELECT count(*) FROM objects WHERE category_id = 1")
    assert counts["objects"] == expected == len(coco["annotations"])
    assert counts["images"] == reader.scalar(
        "SELECT count(DISTINCT image_id) FROM objects WHERE category_id = 1"
    )
    assert "cocolens_metrics" not in coco["images"][0]


def test_downscaled_export_keeps_masks_aligned(fruits: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.json"
    counts = export_coco(fruits, out, max_side=400)
    assert counts["images_written"] == 18 and counts["images_dir"] == str(tmp_path / "small_images")
    coco = json.loads(out.read_text())
    for image in coco["images"]:
        assert (image["width"], image["height"]) == (400, 300)
        with Image.open(tmp_path / "small_images" / image["file_name"]) as img:
            assert img.size == (400, 300)
    original = json.loads((shared("fruits_nuts") / "annotations.json").read_text())
    by_id = {a["id"]: a for a in original["annotations"]}
    ious = []
    for ann in coco["annotations"]:
        source = by_id[ann["id"]]
        back = scale_segmentation(ann["segmentation"], 2.0, 2.0)
        a = rle_to_mask(object_rle(source["segmentation"], source["bbox"], 600, 800))
        b = rle_to_mask(object_rle(back, [v * 2 for v in ann["bbox"]], 600, 800))
        ious.append((a & b).sum() / max(1, (a | b).sum()))
        assert np.allclose(np.array(ann["bbox"]) * 2, source["bbox"], atol=1e-6)
        assert ann["area"] * 4 == pytest.approx(source["area"])
    assert min(ious) >= 0.9, min(ious)
    # the re-imported downscaled set decodes at the exported size: labels and pixels agree
    summary = import_coco(
        tmp_path / "small_images", out, tmp_path / "small_project", dataset="small", workers=2
    )
    assert (summary["images"], summary["objects"], summary["missing_images"]) == (18, 165, 0)
    reader = ProjectReader(tmp_path / "small_project")
    assert (
        reader.scalar("SELECT count(*) FROM images WHERE decoded_width = 400 AND decoded_height = 300") == 18
    )


def _rle_dataset(folder: Path) -> tuple[Path, Path]:
    """Two 200×100 images, one with an EXIF rotation: an RLE square and a polygon per image."""
    from metrics.geometry import mask_to_uncompressed_rle

    images_dir, ann = write_small_coco(folder, n_images=1)
    mask = np.zeros((100, 200), np.uint8)
    mask[20:60, 40:120] = 1
    pixels = np.zeros((200, 100, 3), np.uint8)  # stored portrait; EXIF 6 turns it into 200×100 landscape
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(pixels).save(images_dir / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(images_dir / "plain.png")
    images = [{"id": 5, "file_name": "rotated.jpg", "width": 200, "height": 100},
              {"id": 6, "file_name": "plain.png", "width": 200, "height": 100}]  # fmt: skip
    anns = [
        {"id": 1, "image_id": 5, "category_id": 1, "bbox": [40, 20, 80, 40], "area": 3200, "iscrowd": 1,
         "segmentation": mask_to_uncompressed_rle(mask)},
        {"id": 2, "image_id": 6, "category_id": 2, "bbox": [40, 20, 80, 40], "area": 3200, "iscrowd": 0,
         "segmentation": [[40, 20, 120, 20, 120, 60, 40, 60]]},
        {"id": 1, "image_id": 6, "category_id": 2, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0,
         "segmentation": []},  # id 1 again, on another image: kept, keyed by (image_id, id)
    ]  # fmt: skip
    coco = json.loads(ann.read_text())
    coco.update(images=images, annotations=anns)
    ann.write_text(json.dumps(coco))
    return images_dir, ann


def test_rle_and_exif_rotation_are_scaled_in_the_annotated_frame(tmp_path: Path) -> None:
    images_dir, ann = _rle_dataset(tmp_path / "src")
    import_coco(images_dir, ann, tmp_path / "p", dataset="r", workers=1)
    out = tmp_path / "out" / "r.json"
    counts = export_coco(tmp_path / "p", out, max_side=100, with_metrics=True)
    assert counts["objects"] == 3
    coco = json.loads(out.read_text())
    reused = [a for a in coco["annotations"] if a["id"] == 1]
    assert [(a["image_id"], a["cocolens_metrics"]["object_area"]) for a in reused] == [
        (5, 3200.0),
        (6, 100.0),
    ]
    only = export_coco(tmp_path / "p", tmp_path / "one.json", object_ids=[(6, 1)])
    assert (only["images"], only["objects"]) == (2, 1)
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(100, 50), (100, 50)]
    with Image.open(out.parent / "r_images" / "rotated.jpg") as img:
        assert img.size == (100, 50)  # rotation applied, as at import
    rle = coco["annotations"][0]["segmentation"]
    assert rle["size"] == [50, 100] and isinstance(rle["counts"], list)
    mask = rle_to_mask(rle)
    assert mask.sum() == 20 * 40 and mask[10:30, 20:60].all()
    assert coco["annotations"][0]["bbox"] == [20, 10, 40, 20] and coco["annotations"][0]["area"] == 800
    assert coco["annotations"][2]["segmentation"] == [[20, 10, 60, 10, 60, 30, 20, 30]]


def test_bad_arguments_exit_2_with_one_line(
    fruits: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "x.json"
    cases = [
        (["--where", "read_csv('/etc/passwd') IS NULL"], "--where: function read_csv() is not allowed"),
        (["--where", "brightness > 0; DROP TABLE images"], "--where: ';' is not allowed"),
        (["--max-side", "0"], "--max-side"),
        (["--dataset", "nope"], "no dataset named 'nope'"),
    ]
    for extra, message in cases:
        code = main(["export", "coco", "--project", str(fruits), "--out", str(out), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and "\n" not in err, err
        assert not out.exists()
    code = main(["export", "coco", "--project", str(tmp_path / "none"), "--out", str(out)])
    assert code == 2 and "not a cocolens project" in capsys.readouterr().err
