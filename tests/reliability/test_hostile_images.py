"""Hostile image files through ``cocolens import coco``: each one is flagged, the import goes on.

One bad image among thousands must not cost the user the other thousands, so an image that cannot
be read becomes ``status = 'unreadable'`` (or ``'missing'``) with a one-line ``error`` and its
geometry metrics, and the import exits 0. Refused outright (exit 2, project unchanged) is only
what makes the annotations file itself wrong, e.g. a file name that is not valid Unicode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import cli_import, import_argv
from tests.reliability.hostile import assert_refused, jpeg_bytes, png_bomb, run_cli

W, H = 80, 60  # every test image is 80×60 as stored


def _save(path: Path, image: Image.Image, **params) -> None:
    image.save(path, **params)


def _photo() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _exif_rotated(path: Path) -> None:
    image = Image.fromarray(_photo())
    exif = image.getexif()
    exif[274] = 6  # stored landscape, shown portrait (rotate 90° clockwise)
    image.save(path, "JPEG", exif=exif)


def _latin1_name(folder: Path) -> None:
    with open(os.fsencode(folder) + b"/caf\xe9.jpg", "wb") as handle:  # a Latin-1 byte name on disk
        handle.write(jpeg_bytes())


# case id → (file_name in the COCO file, writer(images folder), annotated (w, h), status, error fragment)
Case = tuple[str, Callable[[Path], None], tuple[int, int], str, str]
CASES: dict[str, Case] = {
    "zero-bytes": (
        "empty.jpg",
        lambda d: (d / "empty.jpg").write_bytes(b""),
        (W, H),
        "unreadable",
        "0 bytes",
    ),
    "truncated-jpeg": (
        "trunc.jpg",
        lambda d: (d / "trunc.jpg").write_bytes(jpeg_bytes()[: len(jpeg_bytes()) // 2]),
        (W, H),
        "unreadable",
        "truncated",
    ),
    "not-an-image": (
        "text.jpg",
        lambda d: (d / "text.jpg").write_text("hello"),
        (W, H),
        "unreadable",
        "cannot identify",
    ),
    "cmyk-jpeg": (
        "cmyk.jpg",
        lambda d: _save(d / "cmyk.jpg", Image.fromarray(_photo()).convert("CMYK")),
        (W, H),
        "ok",
        "",
    ),
    "png-16-bit": (
        "g16.png",
        lambda d: _save(d / "g16.png", Image.fromarray(_photo()[:, :, 0].astype(np.uint16) * 257)),
        (W, H),
        "ok",
        "",
    ),
    "png-palette": (
        "pal.png",
        lambda d: _save(
            d / "pal.png", Image.fromarray(_photo()).convert("P", palette=Image.Palette.ADAPTIVE)
        ),
        (W, H),
        "ok",
        "",
    ),
    "png-alpha": (
        "rgba.png",
        lambda d: _save(
            d / "rgba.png", Image.fromarray(np.dstack([_photo(), np.full((H, W), 128, np.uint8)]))
        ),
        (W, H),
        "ok",
        "",
    ),
    "tiff-float32": (
        "float.tif",
        lambda d: _save(
            d / "float.tif", Image.fromarray(np.linspace(0, 1, W * H, dtype=np.float32).reshape(H, W))
        ),
        (W, H),
        "ok",
        "",
    ),
    "png-named-jpg": (
        "png.jpg",
        lambda d: _save(d / "png.jpg", Image.fromarray(_photo()), format="PNG"),
        (W, H),
        "ok",
        "",
    ),
    "gif-animated": (
        "anim.gif",
        lambda d: _save(
            d / "anim.gif", Image.fromarray(_photo()), save_all=True, append_images=[Image.new("RGB", (W, H))]
        ),
        (W, H),
        "ok",
        "",
    ),
    "exif-rotated-annotated-rotated": (
        "rot_a.jpg",
        lambda d: _exif_rotated(d / "rot_a.jpg"),
        (H, W),
        "ok",
        "",
    ),
    "exif-rotated-annotated-stored": (
        "rot_b.jpg",
        lambda d: _exif_rotated(d / "rot_b.jpg"),
        (W, H),
        "ok",
        "",
    ),
    "exif-corrupt": (
        "badexif.jpg",
        lambda d: _save(
            d / "badexif.jpg",
            Image.fromarray(_photo()),
            format="JPEG",
            exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
        ),
        (W, H),
        "ok",
        "",
    ),
    "decompression-bomb-30000px": (
        "bomb.png",
        lambda d: (d / "bomb.png").write_bytes(png_bomb()),
        (30_000, 30_000),
        "unreadable",
        "decompression bomb",
    ),
    "symlink-escaping-folder": (
        "escape.jpg",
        lambda d: os.symlink(d.parent / "outside.jpg", d / "escape.jpg"),
        (W, H),
        "unreadable",
        "symlink escape",
    ),
    "symlink-to-dev-zero": (
        "zero.jpg",
        lambda d: os.symlink("/dev/zero", d / "zero.jpg"),
        (W, H),
        "unreadable",
        "outside the images folder",
    ),
    "symlink-inside-folder": (
        "link.jpg",
        lambda d: os.symlink(d / "cmyk.jpg", d / "link.jpg"),
        (W, H),
        "ok",
        "",
    ),
    "fifo": ("pipe.jpg", lambda d: os.mkfifo(d / "pipe.jpg"), (W, H), "unreadable", "not a regular file"),
    "directory-as-file": (
        "folder.jpg",
        lambda d: (d / "folder.jpg").mkdir(),
        (W, H),
        "unreadable",
        "Is a directory",
    ),
    "path-through-a-file": ("cmyk.jpg/x.jpg", lambda d: None, (W, H), "missing", "file not found"),
    "missing-file": ("nowhere.jpg", lambda d: None, (W, H), "missing", "file not found"),
    "non-utf8-name-on-disk": ("café.jpg", _latin1_name, (W, H), "missing", "file not found"),
    "one-pixel": (
        "one.png",
        lambda d: _save(d / "one.png", Image.new("RGB", (1, 1), (9, 9, 9))),
        (1, 1),
        "ok",
        "",
    ),
    "one-by-4000": (
        "thin.png",
        lambda d: _save(d / "thin.png", Image.new("L", (4000, 1), 7)),
        (4000, 1),
        "ok",
        "",
    ),
}
PIXEL_METRICS = ("brightness", "contrast", "sharpness", "entropy")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("hostile_images")
    images_dir = folder / "images"
    images_dir.mkdir()
    (folder / "outside.jpg").write_bytes(jpeg_bytes())
    images = []
    for image_id, (case_id, (file_name, write, (width, height), _, _)) in enumerate(CASES.items()):
        write(images_dir)
        images.append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height, "case": case_id}
        )
    coco = {
        "images": images,
        "annotations": [
            {"id": k + 1, "image_id": k, "category_id": 1, "bbox": [1, 1, 1, 1], "area": 1, "iscrowd": 0}
            for k in range(len(images))
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    ann = folder / "hostile.json"
    ann.write_text(json.dumps(coco))
    project = folder / "project"
    return {"images": images_dir, "ann": ann, "project": project, "coco": coco}


@pytest.fixture(scope="module")
def table(imported) -> pd.DataFrame:
    cli_import(imported["images"], imported["ann"], imported["project"], None, "--workers", "1")
    dataset = imported["project"] / "datasets" / "hostile"
    images = pd.read_parquet(dataset / "images.parquet").set_index("file_name")
    for name in PIXEL_METRICS + ("width", "grayscale"):
        values = pd.read_parquet(dataset / "metrics" / f"image__{name}.parquet").set_index("image_id")[
            "value"
        ]
        images[name] = images["image_id"].map(values)
    return images


@pytest.mark.parametrize("case_id", list(CASES))
def test_hostile_image_is_flagged_and_the_import_goes_on(table, case_id):
    file_name, _, (width, height), status, fragment = CASES[case_id]
    row = table.loc[file_name]
    assert row["status"] == status, (case_id, row["status"], row["error"])
    assert fragment in row["error"], (case_id, row["error"])
    assert "\n" not in row["error"] and len(row["error"]) <= 500
    assert row["width"] == width, "geometry metrics need no pixels: kept for every image"
    if status == "ok":
        assert all(pd.notna(row[name]) for name in PIXEL_METRICS), row
        assert row["content_hash"] and row["pixel_hash"]
    else:
        assert all(pd.isna(row[name]) for name in PIXEL_METRICS), row
        assert row["pixel_hash"] == ""


def test_exif_orientation_follows_the_annotated_frame(table):
    rotated, stored = table.loc["rot_a.jpg"], table.loc["rot_b.jpg"]
    assert rotated["exif_orientation"] == 6 and stored["exif_orientation"] == 6
    assert bool(rotated["orientation_applied"]) and (rotated["decoded_width"], rotated["decoded_height"]) == (
        H,
        W,
    )
    assert not bool(stored["orientation_applied"]) and (
        stored["decoded_width"],
        stored["decoded_height"],
    ) == (W, H)


def test_report_counts_the_flagged_images(table, imported, capsys):
    code, out, _ = run_cli(capsys, ["report", "--project", str(imported["project"]), "--json"])
    counts = json.loads(out)["datasets"]["hostile"]
    assert code == 0 and counts["images"] == len(CASES)
    assert counts["unreadable_images"] == sum(c[3] == "unreadable" for c in CASES.values())
    assert counts["missing_images"] == sum(c[3] == "missing" for c in CASES.values())


def test_one_pixel_image_gets_every_metric(table):
    row = table.loc["one.png"]
    assert pd.notna(row["grayscale"]) and row["error"] == ""


def test_file_name_that_is_not_unicode_is_refused(imported, tmp_path, capsys):
    """JSON "\\udce9" (Python's way of writing a Latin-1 byte name) cannot be stored: exit 2, nothing written."""
    coco = json.loads(imported["ann"].read_text())
    coco["images"][0]["file_name"] = os.fsdecode(b"caf\xe9.jpg")
    bad = tmp_path / "surrogate.json"
    bad.write_text(json.dumps(coco))  # ensure_ascii writes the lone surrogate as \udce9
    project = tmp_path / "project"
    argv = import_argv(imported["images"], bad, project, None, "--quiet")
    assert_refused(capsys, argv, project, [str(bad), "images[0] (id=0)", "'file_name'", "not valid Unicode"])
    assert not project.exists()


def test_category_name_that_is_not_unicode_is_refused(imported, tmp_path, capsys):
    coco = json.loads(imported["ann"].read_text())
    coco["categories"][0]["name"] = "th\udcffing"
    bad = tmp_path / "surrogate_category.json"
    bad.write_text(json.dumps(coco))
    project = tmp_path / "project"
    argv = import_argv(imported["images"], bad, project, None, "--quiet")
    assert_refused(capsys, argv, project, ["categories[0] (id=1)", "'name'", "Unicode"])
