import json

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import models.data as data_module
from models.data import CocoDetectionDataset, Frames, collate_fn, hflip


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / (a | b).sum()


def _box_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def test_fruits_targets_match_the_annotations_after_resize(fruits):
    ds = CocoDetectionDataset(*fruits, max_side=400, train=False)
    assert len(ds) == 18 and ds.num_classes == 4
    assert ds.label_to_category == {1: 1, 2: 2, 3: 3}
    image, target = ds[0]  # image id 0: 800×600 → 400×300
    assert image.shape == (3, 300, 400) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    objects = fruits.objects[fruits.objects.image_id == 0].sort_values("object_id")
    assert len(target["boxes"]) == len(objects) == 12
    assert target["masks"].shape == (12, 300, 400) and target["masks"].dtype == torch.uint8
    assert target["labels"].tolist() == objects.category_id.tolist()
    expected_boxes = objects[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy() / 2
    expected_boxes[:, 2:] += expected_boxes[:, :2]
    np.testing.assert_allclose(target["boxes"].numpy(), expected_boxes, atol=1e-4)
    for mask, seg, box in zip(
        target["masks"].numpy(), objects.segmentation, target["boxes"].numpy(), strict=True
    ):
        full = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(json.loads(seg), 600, 800)))
        halved = np.asarray(Image.fromarray(full).resize((400, 300), Image.NEAREST))
        assert _iou(mask, halved) > 0.9
        np.testing.assert_allclose(_box_of(mask), box, atol=2.0)
    np.testing.assert_allclose(target["area"].numpy(), target["masks"].flatten(1).sum(1).numpy())
    assert int(target["image_id"]) == 0 and target["content_hash"] == "hash-0"


def test_flip_moves_masks_and_boxes_together(fruits, monkeypatch):
    plain = CocoDetectionDataset(*fruits, max_side=320, train=False)
    flipping = CocoDetectionDataset(*fruits, max_side=320, train=True)
    monkeypatch.setattr(data_module.random, "random", lambda: 0.0)  # always flip
    image, target = plain[3]
    f_image, f_target = flipping[3]
    assert torch.equal(f_image, image.flip(-1))
    assert torch.equal(f_target["masks"], target["masks"].flip(-1))
    width = image.shape[-1]
    for mask, box in zip(f_target["masks"].numpy(), f_target["boxes"].numpy(), strict=True):
        np.testing.assert_allclose(_box_of(mask), box, atol=2.0)
        assert 0 <= box[0] < box[2] <= width
    twice_image, twice = hflip(f_image, f_target)
    assert torch.equal(twice_image, image)
    torch.testing.assert_close(twice["boxes"], target["boxes"])
    monkeypatch.setattr(data_module.random, "random", lambda: 0.9)  # never flip
    assert torch.equal(flipping[3][0], image)


def test_bbox_only_objects_get_box_masks(blood_cells):
    ds = CocoDetectionDataset(*blood_cells, max_side=416, train=False)
    assert ds.label_to_category == {1: 0, 2: 1, 3: 2}  # the unused id 0 still gets a label
    assert ds.category_names[1] == "rbc"
    first_id = int(ds.images.image_id.iloc[0])
    objects = blood_cells.objects[blood_cells.objects.image_id == first_id]
    image, target = ds[0]
    assert image.shape == (3, 416, 416)
    assert len(target["boxes"]) == len(objects) > 0
    assert {ds.label_to_category[label] for label in target["labels"].tolist()} <= {1, 2}
    for mask, box in zip(target["masks"].numpy(), target["boxes"].numpy(), strict=True):
        x1, y1, x2, y2 = box
        assert abs(int(mask.sum()) - (x2 - x1) * (y2 - y1)) <= 2 * ((x2 - x1) + (y2 - y1)) + 4
        np.testing.assert_allclose(_box_of(mask), box, atol=1.0)


def _frames(tmp_path, raw: Image.Image, exif_orientation: int | None, objects: list[dict], **image_fields):
    path = tmp_path / "im.jpg"
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[274] = exif_orientation
        raw.save(path, exif=exif, quality=100)
    else:
        raw.save(path, quality=100)
    record = {
        "image_id": 7,
        "path": str(path),
        "status": "ok",
        "orientation_applied": True,
        "content_hash": "h",
    }
    images = pd.DataFrame([{**record, **image_fields}])
    rows = [
        {"object_id": i + 1, "image_id": 7, "category_id": 5, "iscrowd": 0, "seg_type": "none", **o}
        for i, o in enumerate(objects)
    ]
    return Frames(images, pd.DataFrame(rows), pd.DataFrame([{"category_id": 5, "name": "thing"}]))


def test_exif_orientation_is_applied_when_the_import_says_so(tmp_path):
    raw = np.zeros((20, 40, 3), dtype=np.uint8)  # stored landscape 40×20
    raw[0:5, 0:10] = 255  # white block at the stored top-left
    # Orientation 6: viewers rotate 90° clockwise → displayed 20×40; the block lands top-right.
    box = {"bbox_x": 15.0, "bbox_y": 0.0, "bbox_w": 5.0, "bbox_h": 10.0, "segmentation": ""}
    frames = _frames(tmp_path, Image.fromarray(raw), 6, [box], width=20, height=40)
    image, target = CocoDetectionDataset(*frames, max_side=100, train=False)[0]
    assert image.shape == (3, 40, 20)
    bright = image.mean(0).numpy() > 0.5
    assert bright[0:10, 15:20].mean() > 0.9 and bright[:, :12].mean() < 0.05
    assert target["masks"][0].bool().numpy()[bright].mean() > 0.9

    frames.images.loc[:, ["width", "height", "orientation_applied"]] = [40, 20, False]
    image, _ = CocoDetectionDataset(*frames, max_side=100, train=False)[0]
    assert image.shape == (3, 20, 40)  # stored frame kept
    assert image.mean(0).numpy()[0:5, 0:10].mean() > 0.9


def test_rle_degenerate_crowd_and_unknown_category(tmp_path):
    truth = np.zeros((30, 60), dtype=np.uint8)
    truth[5:15, 10:40] = 1
    compressed = mask_utils.encode(np.asfortranarray(truth))
    compressed["counts"] = compressed["counts"].decode()
    flat = truth.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    uncompressed = {"size": [30, 60], "counts": runs}
    box = {"bbox_x": 10.0, "bbox_y": 5.0, "bbox_w": 30.0, "bbox_h": 10.0}
    objects = [
        {**box, "segmentation": json.dumps(compressed)},
        {**box, "segmentation": json.dumps(uncompressed)},
        {**box, "bbox_w": 0.0, "segmentation": ""},  # degenerate: skipped
        {**box, "iscrowd": 1, "segmentation": json.dumps(compressed)},  # crowd: skipped
        {**box, "category_id": 99, "segmentation": ""},  # not in the categories: skipped
    ]
    frames = _frames(tmp_path, Image.new("RGB", (60, 30)), None, objects, width=60, height=30)
    _, target = CocoDetectionDataset(*frames, max_side=30, train=False)[0]  # 60×30 → 30×15
    assert target["masks"].shape == (2, 15, 30)
    expected = np.asarray(Image.fromarray(truth).resize((30, 15), Image.NEAREST))
    for mask in target["masks"].numpy():
        assert np.array_equal(mask, expected)
    assert target["labels"].tolist() == [1, 1]


def test_only_ok_images_and_empty_targets(tmp_path, fruits):
    images = fruits.images.copy()
    images.loc[images.image_id == 1, "status"] = "missing"
    ds = CocoDetectionDataset(
        images, fruits.objects[fruits.objects.image_id != 2], fruits.categories, 200, False
    )
    assert len(ds) == 17 and 1 not in ds.images.image_id.tolist()
    index = ds.images.index[ds.images.image_id == 2][0]
    image, target = ds[index]
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, *image.shape[-2:])
    images_batch, targets_batch = collate_fn([ds[0], ds[index]])
    assert len(images_batch) == 2 and len(targets_batch) == 2
