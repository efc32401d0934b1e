"""Plant synthetic label errors into a copy of a dataset's labels, to learn what errors look like here.

cocolens learns how to combine its label-error evidence on the user's own data: it corrupts a copy
of the labels with errors of known kinds, computes the same features on planted and untouched
labels, and fits a classifier. The kinds mirror the mistakes annotators make (and the ones the
label-error yardstick plants):

* ``class``     — the category changed to another used category (a swap);
* ``location``  — the box moved and/or resized so that its IoU with the original is 0.3–0.5;
* ``spurious``  — a box where there is no object: random size and place, or a real label's size at
  a random place, with a random used category;
* ``duplicate`` — a second, slightly jittered copy of an existing label (IoU ≥ 0.7), same class;
* ``drop``      — a label removed (an overlooked object); recorded per image with its box.

Everything is a pure function of the inputs and the seed; the user's tables are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Share of labels planted per kind in one corrupted copy. Close to the yardstick's protocol
# (10 % swaps, 5 % shifts, 5 % drops, 3 % spurious), plus duplicates, which annotation tools make too.
# Location errors get the largest share: they are the hardest kind to tell from a clean label, and
# their AUROC on blood_cells rose from 0.91 to 0.95 as planted examples grew from ~180 to ~660.
PLANT_RATES = {"class": 0.08, "location": 0.10, "spurious": 0.03, "duplicate": 0.02, "drop": 0.05}
# IoU band of a planted location error with its original box (the yardstick's band).
SHIFT_IOU = (0.3, 0.5)
# A planted duplicate overlaps its original at least this much: a double click, not a second object.
DUPLICATE_MIN_IOU = 0.7
# Spurious boxes drawn at random span this fraction of the image side (the yardstick's range).
SPURIOUS_SIDE = (0.05, 0.3)

KINDS = ("clean", "class", "location", "spurious", "duplicate")
BOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]
LABEL_COLUMNS = ["image_id", "object_id", "category_id", *BOX, "iscrowd"]


@dataclass(frozen=True)
class PlantedCopy:
    """A corrupted copy of the labels and what was planted.

    ``labels`` has the input's columns plus ``planted`` (one of :data:`KINDS`) and ``source_row``
    (row of the input it derives from; -1 for spurious boxes). ``dropped`` lists the removed labels
    (image_id, category_id and box) — the overlooked objects a missing-label detector should find.
    """

    labels: pd.DataFrame
    dropped: pd.DataFrame


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) xywh arrays."""
    ix = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _clip_boxes(boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    x0 = np.clip(boxes[:, 0], 0, width - 1)
    y0 = np.clip(boxes[:, 1], 0, height - 1)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], x0 + 1, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], y0 + 1, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def _moved_boxes(
    boxes: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    band: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Each box translated (and a third of them also rescaled) until its IoU with itself is in ``band``.

    A step along a random direction is found by bisection on its length (IoU falls as the box moves);
    the result is clipped to the image and kept if its IoU lands in the band, else retried.
    """
    out = boxes.copy()
    todo = np.arange(len(boxes))
    for _ in range(30):
        if not todo.size:
            break
        b = boxes[todo]
        target = rng.uniform(*band, size=todo.size)
        scale = np.where(rng.random(todo.size) < 1 / 3, np.exp(rng.uniform(-0.5, 0.5, todo.size)), 1.0)
        theta = rng.uniform(0, 2 * np.pi, todo.size)
        w, h = b[:, 2] * scale, b[:, 3] * scale
        cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
        lo, hi = np.zeros(todo.size), np.full(todo.size, 2.0)
        for _ in range(30):
            mid = (lo + hi) / 2
            moved = np.stack(
                [
                    cx + mid * np.cos(theta) * b[:, 2] - w / 2,
                    cy + mid * np.sin(theta) * b[:, 3] - h / 2,
                    w,
                    h,
                ],
                axis=1,
            )
            above = box_iou(b, moved) > target
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        moved = np.stack(
            [cx + lo * np.cos(theta) * b[:, 2] - w / 2, cy + lo * np.sin(theta) * b[:, 3] - h / 2, w, h],
            axis=1,
        )
        moved = _clip_boxes(moved, width[todo], height[todo])
        iou = box_iou(b, moved)
        ok = (iou >= band[0] - 0.02) & (iou <= band[1] + 0.02)
        out[todo[ok]] = moved[ok]
        todo = todo[~ok]
    if todo.size:  # boxes too big for the image to move that far: shrink them instead
        b = boxes[todo]
        f = np.sqrt(rng.uniform(*band, size=todo.size))
        out[todo] = np.stack([b[:, 0], b[:, 1], b[:, 2] * f, b[:, 3] * f], axis=1)
    return out


def _duplicate_boxes(
    boxes: np.ndarray, width: np.ndarray, height: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    jitter = rng.normal(0, 0.04, size=boxes.shape) * np.c_[boxes[:, 2:], boxes[:, 2:]]
    out = _clip_boxes(boxes + jitter, width, height)
    weak = box_iou(boxes, out) < DUPLICATE_MIN_IOU
    out[weak] = boxes[weak]
    return out


def _spurious_boxes(
    count: int,
    images: pd.DataFrame,
    label_sizes: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(image row, box) for ``count`` boxes; half of them random in size, half sized like real labels."""
    rows = rng.integers(0, len(images), size=count)
    width = images["width"].to_numpy(float)[rows]
    height = images["height"].to_numpy(float)[rows]
    w = rng.uniform(*SPURIOUS_SIDE, size=count) * width
    h = rng.uniform(*SPURIOUS_SIDE, size=count) * height
    like_labels = (rng.random(count) < 0.5) & (len(label_sizes) > 0)
    if len(label_sizes):
        pick = label_sizes[rng.integers(0, len(label_sizes), size=count)]
        w = np.where(like_labels, np.minimum(pick[:, 0], width * 0.9), w)
        h = np.where(like_labels, np.minimum(pick[:, 1], height * 0.9), h)
    x = rng.uniform(0, 1, count) * np.maximum(width - w, 0)
    y = rng.uniform(0, 1, count) * np.maximum(height - h, 0)
    return rows, _clip_boxes(np.stack([x, y, w, h], axis=1), width, height)


def plant_errors(
    labels: pd.DataFrame,
    images: pd.DataFrame,
    seed: int,
    rates: dict[str, float] | None = None,
) -> PlantedCopy:
    """A copy of ``labels`` (image_id, object_id, category_id, bbox_*, iscrowd) with errors planted.

    ``images`` gives image_id, width, height. Crowd regions are never corrupted. Planted spurious and
    duplicate labels get object ids above every existing one.
    """
    rates = {**PLANT_RATES, **(rates or {})}
    rng = np.random.default_rng(seed)
    labels = labels[LABEL_COLUMNS].reset_index(drop=True)
    size = images.set_index("image_id")[["width", "height"]].astype(float)
    width = size["width"].reindex(labels["image_id"]).to_numpy()
    height = size["height"].reindex(labels["image_id"]).to_numpy()
    boxes = labels[BOX].to_numpy(float)
    eligible = np.flatnonzero((labels["iscrowd"].to_numpy() == 0) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0))
    n = len(eligible)
    used = np.unique(labels["category_id"].to_numpy())
    counts = {kind: int(round(rates[kind] * n)) for kind in ("class", "location", "duplicate", "drop")}
    if len(used) < 2:
        counts["class"] = 0
    order = rng.permutation(eligible)
    picked: dict[str, np.ndarray] = {}
    start = 0
    for kind in ("class", "location", "drop"):
        picked[kind] = order[start : start + counts[kind]]
        start += counts[kind]
    picked["duplicate"] = order[start : start + counts["duplicate"]]

    out = labels.copy()
    out["planted"] = "clean"
    out["source_row"] = np.arange(len(out))
    categories = out["category_id"].to_numpy().copy()
    for row in picked["class"]:
        others = used[used != categories[row]]
        categories[row] = others[rng.integers(0, len(others))]
    out["category_id"] = categories.astype(labels["category_id"].dtype)
    out.loc[picked["class"], "planted"] = "class"

    rows = picked["location"]
    if rows.size:
        out.loc[rows, BOX] = _moved_boxes(boxes[rows], width[rows], height[rows], SHIFT_IOU, rng)
        out.loc[rows, "planted"] = "location"

    next_id = int(labels["object_id"].max()) + 1 if len(labels) else 1
    extra = []
    rows = picked["duplicate"]
    if rows.size:
        dup = labels.iloc[rows].copy()
        dup[BOX] = _duplicate_boxes(boxes[rows], width[rows], height[rows], rng)
        dup["planted"] = "duplicate"
        dup["source_row"] = rows
        extra.append(dup)
    n_spurious = int(round(rates["spurious"] * n))
    if n_spurious and len(images):
        image_rows, spurious = _spurious_boxes(n_spurious, images, boxes[eligible, 2:4], rng)
        spur = pd.DataFrame(
            {
                "image_id": images["image_id"].to_numpy()[image_rows],
                "category_id": used[rng.integers(0, len(used), size=n_spurious)].astype(
                    labels["category_id"].dtype
                ),
                "iscrowd": 0,
                "planted": "spurious",
                "source_row": -1,
            }
        )
        spur[BOX] = spurious
        extra.append(spur)
    if extra:
        added = pd.concat(extra, ignore_index=True)
        added["object_id"] = np.arange(next_id, next_id + len(added))
        out = pd.concat([out, added[out.columns]], ignore_index=True)
    dropped_rows = picked["drop"]
    dropped = labels.iloc[dropped_rows][["image_id", "object_id", "category_id", *BOX]].reset_index(drop=True)
    out = out.drop(index=dropped_rows).reset_index(drop=True)
    return PlantedCopy(labels=out, dropped=dropped)
