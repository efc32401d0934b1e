"""Pictures for the prediction explorer: labels (solid, as in every gallery) with a model's
predictions drawn dashed beside them, each with its score, cropped around the item a card is about.

Built on :func:`store.thumbnails.render` (labels, masks, EXIF frame, placeholders for missing
files), so labels look the same on every page; only the predictions and the crop are added here.
Cached in ``PROJECT/thumbs/pred/`` under a hash of the labels' picture key, the predictions drawn,
the focus and the size (never of description text).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageDraw

from store import thumbnails

RENDER_VERSION = 3
# Score labels: at least this many pixels high in the card picture (a 320-px card shows them ~1:1).
SCORE_FONT_MIN_PX = 18
CONTEXT = 0.6  # a crop keeps this much of the focus box's size as context on every side
MIN_CONTEXT_PX = 12
MIN_SIDE_PX = 48  # tiny objects still fill a fifth of the card
MAX_RENDER_SIDE = 3000  # the whole image is drawn at most this large before cropping (8 MP → ~2 MP)
DASH_PX = 6


def _box_union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def crop_region(
    focus: list[tuple[float, float, float, float]], frame: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Square region (x0, y0, x1, y1) around the focus boxes with context, kept inside the frame."""
    x, y, w, h = _box_union(focus)
    w, h = max(w, 1.0), max(h, 1.0)
    side = max(
        w + 2 * max(w * CONTEXT, MIN_CONTEXT_PX), h + 2 * max(h * CONTEXT, MIN_CONTEXT_PX), MIN_SIDE_PX
    )
    side = min(side, float(max(frame)))
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(cx - side / 2, 0.0), max(frame[0] - side, 0.0))
    y0 = min(max(cy - side / 2, 0.0), max(frame[1] - side, 0.0))
    return x0, y0, min(x0 + side, float(frame[0])), min(y0 + side, float(frame[1]))


def _frame(record: Mapping[str, Any]) -> tuple[int, int]:
    try:
        width, height = int(record.get("width") or 0), int(record.get("height") or 0)
    except (TypeError, ValueError):
        width = height = 0
    return (width, height) if width > 0 and height > 0 else (640, 480)


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], colour, width: int
) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ):
        length = math.hypot(bx - ax, by - ay)
        steps = max(1, int(length // DASH_PX))
        for k in range(0, steps, 2):
            t0, t1 = k / steps, min(1.0, (k + 1) / steps)
            draw.line(
                [(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)],
                fill=colour,
                width=width,
            )


def render(
    record: Mapping[str, Any],
    objects: pd.DataFrame,
    predictions: pd.DataFrame,
    focus: list[tuple[float, float, float, float]] | None = None,
    focus_prediction: int | None = None,
    focus_object: int | None = None,
    max_side: int = 320,
) -> Image.Image:
    """Labels solid, predictions dashed with their score; cropped around ``focus`` boxes when given."""
    frame = _frame(record)
    region = crop_region(focus, frame) if focus else (0.0, 0.0, float(frame[0]), float(frame[1]))
    region_side = max(region[2] - region[0], region[3] - region[1], 1.0)
    fit = max_side / region_side
    if not focus:
        fit = min(fit, 1.0)
    render_side = int(min(MAX_RENDER_SIDE, max(frame) * min(fit, 1.0))) or 1
    # no highlight_object: its finder ring would cover the crop; the card's label is outlined below instead
    base = thumbnails.render(record, objects, thumbnails.DrawOptions(max_side=max(render_side, 1)))
    k = base.size[0] / frame[0]
    out_size = (max(1, round((region[2] - region[0]) * fit)), max(1, round((region[3] - region[1]) * fit)))
    canvas = base.resize(out_size, Image.Resampling.BILINEAR, box=tuple(v * k for v in region))
    draw = ImageDraw.Draw(canvas)
    font = thumbnails.label_font(max(SCORE_FONT_MIN_PX, min(out_size) // 12))
    if focus_object is not None:
        for row in objects[objects["object_id"] == focus_object].itertuples(index=False):
            box = [
                (row.bbox_x - region[0]) * fit,
                (row.bbox_y - region[1]) * fit,
                (row.bbox_x + row.bbox_w - region[0]) * fit,
                (row.bbox_y + row.bbox_h - region[1]) * fit,
            ]
            draw.rectangle(box, outline=thumbnails.row_colour(row), width=3)
    ordered = predictions.assign(
        is_focus=predictions["prediction_id"] == (focus_prediction if focus_prediction is not None else -1)
    ).sort_values("is_focus")
    for row in ordered.itertuples(index=False):
        box = (
            (row.bbox_x - region[0]) * fit,
            (row.bbox_y - region[1]) * fit,
            (row.bbox_x + row.bbox_w - region[0]) * fit,
            (row.bbox_y + row.bbox_h - region[1]) * fit,
        )
        if box[2] < 0 or box[3] < 0 or box[0] > out_size[0] or box[1] > out_size[1]:
            continue
        colour = thumbnails.row_colour(row)
        width = 3 if row.is_focus else 1
        if row.is_focus:  # a dark halo so the focus prediction reads on any background
            _dashed_rectangle(draw, box, (0, 0, 0), width + 2)
        _dashed_rectangle(draw, box, colour, width)
        if row.is_focus or focus is None:
            text = f"{row.score:.2f}"
            bottom = min(box[3], out_size[1] - 2)
            text_box = draw.textbbox((box[0], bottom), text, font=font)
            height = text_box[3] - text_box[1]
            left = max(0.0, box[0])
            draw.rectangle(
                [left, bottom - height - 6, left + text_box[2] - text_box[0] + 8, bottom],
                fill=(0, 0, 0),
                outline=colour,
                width=2,
            )  # white on black, framed in the class colour: readable whatever the colour
            draw.text((left + 4, bottom - height - 4), text, fill=(255, 255, 255), font=font)
    return canvas


PREDICTION_FIELDS = (
    "prediction_id",
    "category_id",
    "colour_id",
    "score",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
)


def picture_path(
    project_root: str | Path,
    record: Mapping[str, Any],
    objects: pd.DataFrame,
    predictions: pd.DataFrame,
    focus: list[tuple[float, float, float, float]] | None = None,
    focus_prediction: int | None = None,
    focus_object: int | None = None,
    max_side: int = 320,
) -> Path:
    """Path of the cached JPEG of :func:`render` for these arguments; drawn now when not cached."""
    parts = {
        "v": RENDER_VERSION,
        "labels": thumbnails.cache_key(
            record, objects, thumbnails.DrawOptions(highlight_object=focus_object)
        ),
        "predictions": thumbnails.rows_signature(predictions, PREDICTION_FIELDS),
        "focus": [list(map(float, b)) for b in focus] if focus else None,
        "focus_prediction": focus_prediction,
        "side": max_side,
    }
    key = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(project_root) / "thumbs" / "pred" / key[:2] / f"{key}.jpg"
    if path.is_file():
        return path
    picture = render(record, objects, predictions, focus, focus_prediction, focus_object, max_side)
    thumbnails.save_jpeg(picture, path)
    return path
