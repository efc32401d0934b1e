"""Thumbnails: annotations land where they belong (also under EXIF rotation), class colours, crops,
placeholders for missing/unreadable files, and the disk cache."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from store import thumbnails
from store.thumbnails import DrawOptions, class_colour, render, thumbnail_path

GREY = (128, 128, 128)


def _objects(*rows: dict) -> pd.DataFrame:
    base = {"segmentation": "", "category": "thing", "iscrowd": 0}
    return pd.DataFrame([{**base, **row} for row in rows])


def _square(
    object_id: int, category_id: int, x: float, y: float, size: float, seg: str | None = None
) -> dict:
    polygon = [[x, y, x + size, y, x + size, y + size, x, y + size]]
    return {
        "object_id": object_id,
        "category_id": category_id,
        "category": f"class{category_id}",
        "bbox_x": x,
        "bbox_y": y,
        "bbox_w": size,
        "bbox_h": size,
        "segmentation": json.dumps(polygon) if seg is None else seg,
    }


def _grey_image(path, width: int, height: int, exif_orientation: int | None = None) -> dict:
    img = Image.new("RGB", (width, height), GREY)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[274] = exif_orientation
        img.save(path, format="JPEG", quality=95, exif=exif)
    else:
        img.save(path, format="JPEG", quality=95)
    return {
        "path": str(path),
        "status": "ok",
        "error": "",
        "width": width,
        "height": height,
        "content_hash": f"hash-{path.name}",
        "exif_orientation": exif_orientation or 1,
        "orientation_applied": exif_orientation is not None,
    }


def _tinted(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    """The pixel moved from grey towards the class colour (mask fill)."""
    towards = np.asarray(colour, float) - np.asarray(GREY, float)
    moved = pixel.astype(float) - np.asarray(GREY, float)
    return float(np.dot(moved, towards)) > 0.2 * float(np.dot(towards, towards)) * thumbnails.MASK_ALPHA


def test_polygon_filled_in_its_class_colour_at_its_place(tmp_path):
    record = _grey_image(tmp_path / "a.jpg", 200, 100)
    objects = _objects(_square(1, 1, 20, 20, 40), _square(2, 2, 120, 30, 50))
    picture = np.asarray(render(record, objects, DrawOptions(max_side=200)))
    assert picture.shape == (100, 200, 3)
    assert _tinted(picture[40, 40], class_colour(1))
    assert _tinted(picture[55, 145], class_colour(2))
    assert not _tinted(picture[90, 100], class_colour(1))  # background stays grey
    assert class_colour(1) != class_colour(2)


def test_scaled_down_drawing_keeps_coordinates(tmp_path):
    record = _grey_image(tmp_path / "big.jpg", 1600, 1200)
    objects = _objects(_square(1, 3, 1200, 100, 200))  # top right
    picture = np.asarray(render(record, objects, DrawOptions(max_side=400)))
    assert picture.shape == (300, 400, 3)
    assert _tinted(picture[50, 325], class_colour(3))  # (1300, 200) × 0.25
    assert not _tinted(picture[250, 50], class_colour(3))


def test_exif_rotation_is_applied_when_the_import_applied_it(tmp_path):
    # stored 120×80 landscape with orientation 6 (rotate 90° clockwise): shown 80×120 portrait,
    # and the annotations (made on the portrait frame) land in its top-left corner.
    record = _grey_image(tmp_path / "rot.jpg", 120, 80, exif_orientation=6)
    record.update(width=80, height=120)
    objects = _objects(_square(1, 1, 5, 5, 30))
    picture = np.asarray(render(record, objects, DrawOptions(max_side=200)))
    assert picture.shape == (120, 80, 3)
    assert _tinted(picture[20, 20], class_colour(1))
    unrotated = dict(record, orientation_applied=False, width=120, height=80)
    assert np.asarray(render(unrotated, objects, DrawOptions(max_side=200))).shape == (80, 120, 3)


def test_rle_mask_and_box_only_objects_are_drawn(tmp_path):
    from metrics.geometry import mask_to_uncompressed_rle

    record = _grey_image(tmp_path / "m.jpg", 100, 100)
    mask = np.zeros((100, 100), bool)
    mask[60:90, 10:40] = True
    rle = json.dumps(mask_to_uncompressed_rle(mask))
    box_only = {**_square(2, 2, 60, 10, 30, seg=""), "segmentation": ""}
    objects = _objects(_square(1, 1, 10, 60, 30, seg=rle), box_only)
    picture = np.asarray(render(record, objects, DrawOptions(max_side=100)))
    assert _tinted(picture[75, 25], class_colour(1))
    edge = picture[10:12, 60:90].reshape(-1, 3).astype(float)  # the box's top edge
    assert np.abs(edge - np.asarray(class_colour(2), float)).sum(axis=1).min() < 60


def test_missing_and_unreadable_files_give_a_card_that_says_so(tmp_path):
    objects = _objects(_square(1, 1, 10, 10, 20))
    missing = {
        "path": str(tmp_path / "gone.jpg"),
        "status": "missing",
        "error": "",
        "width": 160,
        "height": 120,
        "content_hash": "",
    }
    picture = np.asarray(render(missing, objects, DrawOptions(max_side=160)))
    assert picture.shape == (120, 160, 3)
    red_band = (picture[:, :, 0] > 120) & (picture[:, :, 1] < 60) & (picture[:, :, 2] < 60)
    assert red_band.sum() > 500  # the red caption band naming the problem
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    unreadable = dict(missing, path=str(broken), status="ok")
    picture = np.asarray(render(unreadable, objects, DrawOptions(max_side=160)))
    assert picture.shape == (120, 160, 3)


def test_crop_is_square_enlarged_and_centred_on_its_object(tmp_path):
    record = _grey_image(tmp_path / "c.jpg", 400, 300)
    objects = _objects(_square(1, 1, 200, 150, 6), _square(2, 2, 20, 20, 50))
    options = DrawOptions(max_side=128, crop_object=1, box=(128, 128))
    picture = np.asarray(render(record, objects, options))
    assert picture.shape == (128, 128, 3)
    assert _tinted(picture[64, 64], class_colour(1))  # a 6-px object fills the middle of the crop
    with pytest.raises(KeyError):
        render(record, objects, DrawOptions(crop_object=99))


def test_letterbox_and_legend(tmp_path):
    record = _grey_image(tmp_path / "wide.jpg", 400, 100)
    objects = _objects(_square(1, 1, 10, 10, 20))
    boxed = render(record, objects, DrawOptions(max_side=320, box=(320, 240)))
    assert boxed.size == (320, 240)
    with_legend = render(record, objects, DrawOptions(max_side=320, legend=True))
    assert with_legend.size[0] == 320 and with_legend.size[1] > 80


def test_disk_cache_is_reused_and_keyed_on_what_changes_the_picture(tmp_path, monkeypatch):
    record = _grey_image(tmp_path / "k.jpg", 100, 80)
    objects = _objects(_square(1, 1, 10, 10, 20))
    first = thumbnail_path(tmp_path / "project", record, objects, DrawOptions(max_side=64))
    assert first.is_file() and first.is_relative_to(tmp_path / "project" / "thumbs")
    monkeypatch.setattr(thumbnails, "render", lambda *a, **k: pytest.fail("cached picture drawn again"))
    assert thumbnail_path(tmp_path / "project", record, objects, DrawOptions(max_side=64)) == first
    monkeypatch.undo()
    moved = _objects(_square(1, 1, 12, 10, 20))
    assert thumbnail_path(tmp_path / "project", record, moved, DrawOptions(max_side=64)) != first
    assert thumbnail_path(tmp_path / "project", record, objects, DrawOptions(max_side=65)) != first
    other_file = dict(record, content_hash="another")
    assert thumbnail_path(tmp_path / "project", other_file, objects, DrawOptions(max_side=64)) != first
    paths = thumbnails.thumbnail_paths(
        tmp_path / "project", [(record, objects, DrawOptions(max_side=s)) for s in (30, 31)]
    )
    assert len(set(paths)) == 2 and all(p.is_file() for p in paths)
