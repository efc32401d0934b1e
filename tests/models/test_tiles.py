"""Tiles for small objects: windows, training crops, and tiled prediction against a deterministic detector.

The fake detector finds white squares but, like a real one, not below a few pixels: on a large image
shrunk to the model's size the small squares vanish, on tiles they do not.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from torch import nn

from models.data import Frames
from models.predict import predict
from models.tiles import TiledDataset, predict_tiled, tile_windows

MIN_PX = 6  # the fake detector's smallest visible object side, in input pixels
SMALL = 14  # small squares' side in the original image
W, H = 2048, 1536


class SquareDetector(nn.Module):
    """Connected white regions of at least MIN_PX × MIN_PX pixels, score 0.9, label 1, exact masks."""

    def forward(self, images):
        outputs = []
        for image in images:
            white = (image > 0.8).all(0).numpy()
            regions, _ = ndimage.label(white)
            boxes, masks = [], []
            for index, found in enumerate(ndimage.find_objects(regions), start=1):
                ys, xs = found
                if ys.stop - ys.start < MIN_PX or xs.stop - xs.start < MIN_PX:
                    continue
                boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                masks.append(regions == index)
            n = len(boxes)
            outputs.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                    "scores": torch.full((n,), 0.9),
                    "labels": torch.ones(n, dtype=torch.int64),
                    "masks": torch.from_numpy(np.array(masks, dtype=np.float32).reshape(n, 1, *white.shape)),
                }
            )
        return outputs


def _canvas(tmp_path):
    """A 2048×1536 image: 12 small squares (one in the overlap of two tiles) and one 600 px square."""
    pixels = np.full((H, W, 3), 30, dtype=np.uint8)
    rng = np.random.default_rng(0)
    small = []
    while len(small) < 11:
        x, y = int(rng.integers(20, W - 40)), int(rng.integers(20, H - 40))
        if (x < 1300 or y > 900) and all(abs(x - a) > 40 or abs(y - b) > 40 for a, b in small):
            small.append((x, y))
    small.append((440, 100))  # inside x 410..512: the overlap of the first two tiles of the top row
    for x, y in small:
        pixels[y : y + SMALL, x : x + SMALL] = 255
    pixels[100:700, 1350:1950] = 255  # larger than a tile: only the full pass sees it whole
    path = tmp_path / "canvas.png"
    Image.fromarray(pixels).save(path)
    images = pd.DataFrame([{"image_id": 7, "path": str(path), "width": W, "height": H, "status": "ok"}])
    truth = [[x, y, SMALL, SMALL] for x, y in small]
    return images, truth, [1350, 100, 600, 600]


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _recall(results, truth):
    return sum(any(_iou(r["bbox"], t) >= 0.5 for r in results) for t in truth) / len(truth)


def test_windows_cover_the_image_with_the_asked_overlap():
    windows = tile_windows(W, H, 512, 0.2)
    assert windows[0] == (0, 0, 512, 512) and windows[1][0] == 410  # step 410 = 512 × 0.8
    assert all(x1 - x0 == 512 and y1 - y0 == 512 for x0, y0, x1, y1 in windows)
    assert max(w[2] for w in windows) == W and max(w[3] for w in windows) == H  # flush with the far edges
    covered = np.zeros((H, W), dtype=bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all() and len(windows) == 5 * 4
    assert tile_windows(300, 200, 512, 0.2) == [(0, 0, 300, 200)]


def test_tiled_predict_finds_the_small_objects_the_untiled_pass_misses(tmp_path):
    images, truth, large = _canvas(tmp_path)
    model = SquareDetector()
    plain = predict(model, images, "cpu", max_side=512, label_to_category={1: 3})
    tiled = predict_tiled(model, images, "cpu", 512, 0.2, max_side=512, label_to_category={1: 3})
    # at 512 px the 14 px squares are 3.5 px: the untiled pass misses every one; tiles find all 12
    assert _recall(plain, truth) == 0.0
    assert _recall(tiled, truth) == 1.0
    assert _recall(plain, [large]) == 1.0 and _recall(tiled, [large]) == 1.0  # the full pass keeps it
    # one detection per object: the square in the tiles' overlap and the large one are not doubled,
    # and no cut fragment of the large square survives
    assert len(tiled) == len(truth) + 1
    assert all(r["category_id"] == 3 and r["image_id"] == 7 for r in tiled)
    for result in tiled:  # masks pasted back where the objects are, in the full frame
        rle = result["segmentation"]
        assert rle["size"] == [H, W]
        x, y, w, h = mask_utils.toBbox(rle).tolist()
        assert [x, y, w, h] == pytest.approx(result["bbox"], abs=1.0)
        if w < 50:
            assert mask_utils.area(rle) == SMALL * SMALL
    json.dumps(tiled)  # plain data, ready for the results file


def test_a_tile_detection_cut_by_an_inner_edge_is_dropped_not_merged_into_a_fragment(tmp_path):
    images, _, large = _canvas(tmp_path)
    tiled = predict_tiled(SquareDetector(), images, "cpu", 512, 0.2, max_side=512, label_to_category={1: 1})
    big = [r for r in tiled if r["bbox"][2] > 100]
    assert len(big) == 1 and _iou(big[0]["bbox"], large) > 0.95


def _frames(tmp_path) -> Frames:
    Image.fromarray(np.full((800, 1000, 3), 90, dtype=np.uint8)).save(tmp_path / "a.png")
    images = pd.DataFrame([{"image_id": 1, "path": str(tmp_path / "a.png"), "width": 1000, "height": 800}])
    boxes = {1: (120, 100, 40, 40), 2: (290, 100, 40, 40), 3: (270, 300, 40, 40), 4: (700, 600, 30, 30)}
    objects = pd.DataFrame(
        [
            {
                "image_id": 1,
                "object_id": i,
                "category_id": 5,
                "iscrowd": 0,
                "bbox_x": x,
                "bbox_y": y,
                "bbox_w": w,
                "bbox_h": h,
                "area": w * h,
                "segmentation": "[]",
            }
            for i, (x, y, w, h) in boxes.items()
        ]  # fmt: skip
    )
    return Frames(images, objects, pd.DataFrame([{"category_id": 5, "name": "c"}]))


def test_training_tiles_clip_labels_and_drop_objects_mostly_outside(tmp_path):
    frames = _frames(tmp_path)
    ds = TiledDataset(*frames, max_side=300, train=True, hflip=False, tile_size=300, min_visibility=0.3)
    target = ds.tile_target(0, (0, 0, 300, 300), 300, 300)
    # object 1 whole; object 2 has 10 of 40 px inside (25 % < 30 %): dropped; object 3 is below the tile
    assert target["boxes"].tolist() == [[120.0, 100.0, 160.0, 140.0]]
    target = ds.tile_target(0, (0, 0, 310, 320), 155, 160)  # object 2: 50 % inside, clipped; half size
    assert target["boxes"].tolist() == [
        [60.0, 50.0, 80.0, 70.0],
        [145.0, 50.0, 155.0, 70.0],
        [135.0, 150.0, 155.0, 160.0],
    ]
    assert target["masks"].shape == (3, 160, 155) and target["masks"][1].sum() == 10 * 20

    ds = TiledDataset(*frames, max_side=128, train=True, hflip=False, tile_size=256, min_visibility=0.3)
    torch.manual_seed(0)
    import random

    random.seed(0)
    with_objects = 0
    for _ in range(200):
        image, target = ds[0]
        assert image.shape == (3, 128, 128)  # the 256 px tile sized like an image (max_side 128)
        x0, y0, x1, y1 = target["window"]
        assert x1 - x0 == 256 and y1 - y0 == 256 and 0 <= x0 and x1 <= 1000 and y1 <= 800
        with_objects += len(target["boxes"]) > 0
    # 4 small objects on an 800 000 px² image: uniform tiles alone would hold one about a third of the
    # time; half the tiles are centred on an object
    assert 0.55 < with_objects / 200 < 0.95


def test_cli_predict_with_tiles_and_a_bad_tile_size(tmp_path, capsys):
    from cli import main
    from tests.models.test_image_folder import _checkpoint, _photos

    checkpoint = _checkpoint(tmp_path)
    photos = _photos(tmp_path / "photos", 2)
    args = [
        "predict",
        "--project",
        str(tmp_path / "p"),
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(photos),
    ]
    assert main([*args, "--model", "bad", "--tile-size", "8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cocolens: error: command line: field '--tile-size': must be 0 (off) or >= 32 pixels, got 8"
    )
    assert main([*args, "--model", "tiled", "--tile-size", "64", "--tile-overlap", "0.25"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads(open(summary["results_file"]).read())
    assert results and all(r["segmentation"]["size"] == [90, 120] for r in results)  # full frame
    assert all(0 <= r["bbox"][0] and r["bbox"][0] + r["bbox"][2] <= 120.001 for r in results)


def test_a_model_trained_on_tiles_predicts_with_tiles_by_default(fruits, tmp_path, monkeypatch):
    from models import tiles
    from models.config import load_config
    from models.predict import predict_to_file
    from models.train import fit

    config = load_config(
        model="maskrcnn_mobilenet_v2_fpn", pretrained_backbone=False, max_side=96, tile_size=192, epochs=1,
        batch_size=2, workers=0, device="cpu", overfit_images=2, score_threshold=0.0,
    )  # fmt: skip
    summary = fit(config, fruits, fruits, tmp_path / "run")
    assert summary["history"][0]["losses"]["loss"] > 0
    calls = []
    real = tiles.predict_tiled

    def spy(*args, **kwargs):
        calls.append(args[3:5])
        return real(*args, **kwargs)

    monkeypatch.setattr(tiles, "predict_tiled", spy)
    images = fruits.images.sort_values("image_id").head(1)
    predict_to_file(summary["checkpoint"], images, tmp_path / "a.json", device="cpu")
    assert calls == [(192, 0.2)]  # as trained: 800×600 photos in 192 px tiles, overlap 0.2
    predict_to_file(summary["checkpoint"], images, tmp_path / "b.json", device="cpu", tile_size=0)
    assert len(calls) == 1  # --tile-size 0: the plain pass
