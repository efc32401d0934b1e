"""Gallery pictures: an image (or one object's crop) with its annotations drawn, cached on disk.

Why a disk cache: decoding an 8 MP JPEG costs tens of milliseconds even at reduced scale, and a
gallery page shows dozens; a cached JPEG of a few kB makes the next visit (and every other browser
session) instant. Files live in ``PROJECT/thumbs/`` named by a hash of everything that changes the
picture: the file's content hash (or its path and status when it has none), its orientation, the
drawn objects' geometry and classes, and the drawing options. Changing any of them draws afresh;
stale files are harmless and can be deleted at any time.

Drawing follows the frame the import chose: when ``orientation_applied`` is true the EXIF rotation
is applied before drawing (the annotations refer to the rotated frame). Missing or unreadable
images become a grey card of the annotated size that says so, with the annotations still drawn.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from metrics.image import orient

# Bumped when the drawing changes, so old cache files are not reused.
RENDER_VERSION = 4
# Colour per class id (cycled): high-contrast, colour-blind-friendly-ish (Okabe–Ito + tab10 extras).
PALETTE: list[tuple[int, int, int]] = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (255, 255, 255),
    (227, 26, 28),
    (51, 160, 44),
    (166, 206, 227),
    (251, 154, 153),
    (202, 178, 214),
    (255, 127, 0),
    (177, 89, 40),
    (31, 120, 180),
    (178, 223, 138),
    (106, 61, 154),
    (253, 191, 111),
    (128, 128, 128),
]
LETTERBOX = (236, 236, 240)  # padding colour around pictures of another aspect ratio
MASK_ALPHA = 0.35  # fill opacity: the object stays visible under its mask
JPEG_QUALITY = 85
CROP_CONTEXT = 0.5  # crops keep half the box size of context on every side
CROP_MIN_CONTEXT_PX = 12
CROP_MIN_SIDE_PX = 64  # a 5-px object still gets some surroundings to judge it by


@dataclass(frozen=True)
class DrawOptions:
    """How to draw: size, what to draw, and (for crops) which object."""

    max_side: int = 320
    masks: bool = True
    boxes: bool = True
    labels: bool = False  # class names beside the boxes (detail view)
    legend: bool = False  # a strip under the picture naming each class drawn
    crop_object: int | None = None  # object_id to crop around (object galleries)
    highlight_object: int | None = None  # object_id drawn bolder (an object opened in its image)
    box: tuple[int, int] | None = None  # letterbox into this (width, height): gallery rows line up
    hide_objects: tuple[
        int, ...
    ] = ()  # object_ids not drawn (a crop may still centre on one: a deleted label)


def class_colour(index: int) -> tuple[int, int, int]:
    """Colour number ``index``: the palette first, then hues spread by the golden angle (all distinct).

    Pictures pass each row's ``colour_id`` when it has one (one number per class name across the
    project, so classes shown together never share a colour), else its category id.
    """
    index = int(index)
    if 0 <= index < len(PALETTE):
        return PALETTE[index]
    import colorsys

    hue = (index * 0.618033988749895) % 1.0
    lightness = 0.45 if index % 2 else 0.62
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.75)
    return round(r * 255), round(g * 255), round(b * 255)


def colour_hex(index: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*class_colour(index))


def row_colour(row: Any) -> tuple[int, int, int]:
    """The colour of an object or prediction row: its ``colour_id`` when given, else its category id."""
    colour_id = getattr(row, "colour_id", None)
    if colour_id is None or pd.isna(colour_id):
        colour_id = row.category_id
    return class_colour(int(colour_id))


# ----- cache ------------------------------------------------------------------------------------------------


def rows_signature(rows: pd.DataFrame, fields: Sequence[str], free_text: str | None = None) -> str:
    """sha1 over every row's ``fields`` (each followed by ``|``; '' where the row lacks one), then its
    ``free_text`` field as is: the part of a picture's cache key that its labels or predictions make."""
    digest = hashlib.sha1()
    for row in rows.itertuples(index=False):
        digest.update("".join(f"{getattr(row, name, '')}|" for name in fields).encode())
        if free_text is not None:
            digest.update(str(getattr(row, free_text, "") or "").encode())
    return digest.hexdigest()


OBJECT_FIELDS = ("object_id", "category_id", "colour_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h")


def _objects_signature(objects: pd.DataFrame) -> str:
    return rows_signature(objects, OBJECT_FIELDS, free_text="segmentation")


def cache_key(record: Mapping[str, Any], objects: pd.DataFrame, options: DrawOptions) -> str:
    """Hash of everything that changes the picture (never of description text)."""
    identity = (
        record.get("content_hash") or f"{record.get('path')}|{record.get('status')}|{record.get('error')}"
    )
    parts = {
        "v": RENDER_VERSION,
        "file": identity,
        "orientation": [
            _int_or_none(record.get("exif_orientation")),
            bool(record.get("orientation_applied")),
        ],
        "frame": [_int_or_none(record.get("width")), _int_or_none(record.get("height"))],
        "objects": _objects_signature(objects),
        "options": asdict(options),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def thumbnail_path(
    project_root: str | Path,
    record: Mapping[str, Any],
    objects: pd.DataFrame,
    options: DrawOptions = DrawOptions(),
) -> Path:
    """Path of the cached JPEG for this image (or crop) and drawing; drawn now when not cached."""
    thumbs = Path(project_root) / "thumbs"
    key = cache_key(record, objects, options)
    path = thumbs / key[:2] / f"{key}.jpg"
    if path.is_file():
        return path
    save_jpeg(render(record, objects, options), path)
    return path


def save_jpeg(picture: Image.Image, path: Path) -> None:
    """Write a cached picture atomically (temporary file, then rename): a reader never sees half a JPEG,
    and another session drawing the same picture writes the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    fd, tmp = tempfile.mkstemp(prefix=".thumb.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def thumbnail_paths(
    project_root: str | Path,
    jobs: list[tuple[Mapping[str, Any], pd.DataFrame, DrawOptions]],
    workers: int = 2,
) -> list[Path]:
    """Paths for a page of pictures, drawing the uncached ones on a few threads (decoding frees the GIL)."""
    if workers <= 1 or len(jobs) <= 1:
        return [thumbnail_path(project_root, *job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: thumbnail_path(project_root, *job), jobs))


# ----- drawing ------------------------------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _frame_size(record: Mapping[str, Any]) -> tuple[int, int]:
    """The annotated (width, height): the frame the coordinates refer to."""
    width, height = _int_or_none(record.get("width")), _int_or_none(record.get("height"))
    if width and height and width > 0 and height > 0:
        return width, height
    width, height = _int_or_none(record.get("decoded_width")), _int_or_none(record.get("decoded_height"))
    if width and height:
        return width, height
    return 640, 480


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img).astype(np.float32)
        top = float(arr.max()) if arr.size else 1.0
        scale = 255.0 / top if top > 255 else (255.0 if img.mode == "F" and top <= 1.0 else 1.0)
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _load(record: Mapping[str, Any], region_scale: float) -> Image.Image | str:
    """The oriented image decoded at about ``region_scale`` of its size, or the reason it cannot be."""
    status = str(record.get("status") or "ok")
    path = str(record.get("path") or "")
    if status == "missing" or not path or not os.path.isfile(path):
        return "missing file" + (f": {Path(path).name}" if path else "")
    if status == "unreadable":
        return "unreadable: " + str(record.get("error") or "cannot be decoded")
    try:
        img = Image.open(path)
        if img.format == "JPEG" and region_scale < 1.0:
            target = (
                max(1, math.ceil(img.size[0] * region_scale)),
                max(1, math.ceil(img.size[1] * region_scale)),
            )
            img.draft("RGB" if img.mode == "RGB" else None, target)
        img.load()
        img = orient(
            img, _int_or_none(record.get("exif_orientation")), bool(record.get("orientation_applied"))
        )
        return _to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"unreadable: {type(exc).__name__}"


def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def _placeholder(size: tuple[int, int], reason: str) -> Image.Image:
    canvas = Image.new("RGB", size, (70, 70, 76))
    draw = ImageDraw.Draw(canvas)
    step = max(8, min(size) // 8)
    for offset in range(-size[1], size[0], step):  # hatching: clearly not a photo
        draw.line([(offset, size[1]), (offset + size[1], 0)], fill=(84, 84, 92), width=1)
    return canvas


def _caption(canvas: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(canvas)
    font = label_font(max(12, canvas.size[0] // 22))
    box = draw.textbbox((0, 0), text, font=font)
    height = box[3] - box[1] + 10
    top = 0  # along the top edge: the annotations below stay visible
    draw.rectangle([0, top, canvas.size[0], top + height], fill=(150, 20, 20))
    draw.text((6, top + 4), text, fill=(255, 255, 255), font=font)


def _rings(segmentation: str) -> list[np.ndarray] | dict | None:
    from metrics.geometry import parse_segmentation, polygon_rings

    seg = parse_segmentation(segmentation)
    if isinstance(seg, dict):
        return seg
    rings = polygon_rings(seg) if seg is not None else []
    return [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings] or None


def _mask_at(seg: dict, size: tuple[int, int], offset: tuple[float, float], scale: tuple[float, float]):
    """Decode an RLE and map it into the drawn picture (nearest neighbour)."""
    import cv2

    from metrics.geometry import rle_from_dict, rle_to_mask

    rle = rle_from_dict(seg)
    if rle is None:
        return None
    mask = rle_to_mask(rle).astype(np.uint8)
    matrix = np.array(
        [[scale[0], 0, -offset[0] * scale[0]], [0, scale[1], -offset[1] * scale[1]]], np.float32
    )
    return cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST) > 0


def _draw_objects(
    canvas: Image.Image,
    objects: pd.DataFrame,
    options: DrawOptions,
    offset: tuple[float, float],
    scale: tuple[float, float],
) -> None:
    """Masks (filled, outlined), boxes and labels in each object's class colour."""
    import cv2

    if objects.empty:
        return
    ox, oy = offset
    sx, sy = scale
    # only objects whose box reaches into the picture (a crop of a crowded image shows few of them)
    x0, y0 = (objects["bbox_x"] - ox) * sx, (objects["bbox_y"] - oy) * sy
    x1, y1 = x0 + objects["bbox_w"] * sx, y0 + objects["bbox_h"] * sy
    visible = ~((x1 < 0) | (y1 < 0) | (x0 > canvas.size[0]) | (y0 > canvas.size[1]))
    objects = objects[visible.fillna(True).to_numpy()]
    base = np.asarray(canvas).astype(np.float32)
    fill = base.copy()
    outlines: list[tuple[list[np.ndarray], tuple[int, int, int], int]] = []
    boxes: list[tuple[list[float], tuple[int, int, int], int, str]] = []
    for row in objects.itertuples(index=False):
        colour = row_colour(row)
        focus = options.crop_object if options.crop_object is not None else options.highlight_object
        highlighted = focus is not None and int(row.object_id) == int(focus)
        width = 4 if highlighted else 2 if focus is None else 1
        geometry = _rings(row.segmentation) if options.masks else None
        mask = None
        if isinstance(geometry, dict):
            mask = _mask_at(geometry, canvas.size, offset, scale)
            if mask is not None:
                contours, _ = cv2.findContours(
                    mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
                )
                outlines.append(([c.reshape(-1, 2).astype(np.float64) for c in contours], colour, width))
        elif geometry:
            points = [np.column_stack([(r[:, 0] - ox) * sx, (r[:, 1] - oy) * sy]) for r in geometry]
            mask = np.zeros((canvas.size[1], canvas.size[0]), np.uint8)
            cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in points], 1)
            mask = mask > 0
            outlines.append((points, colour, width))
        if mask is not None and mask.any():
            alpha = MASK_ALPHA * (1.6 if highlighted else 1.0)
            fill[mask] = fill[mask] * (1 - alpha) + np.asarray(colour, np.float32) * alpha
        has_shape = mask is not None
        if options.boxes or not has_shape:
            box = [
                (row.bbox_x - ox) * sx,
                (row.bbox_y - oy) * sy,
                (row.bbox_x + row.bbox_w - ox) * sx,
                (row.bbox_y + row.bbox_h - oy) * sy,
            ]
            boxes.append(
                (box, colour, width if not has_shape else max(1, width - 1), str(row.category or ""))
            )
    canvas.paste(Image.fromarray(np.clip(fill + 0.5, 0, 255).astype(np.uint8)))
    draw = ImageDraw.Draw(canvas)
    for rings, colour, width in outlines:
        for ring in rings:
            if len(ring) >= 2:
                draw.line([tuple(p) for p in ring] + [tuple(ring[0])], fill=colour, width=width)
    if options.highlight_object is not None:
        _ring(draw, objects, options.highlight_object, offset, scale)
    font = label_font(max(11, min(canvas.size) // 40))
    for box, colour, width, name in boxes:
        x0, y0, x1, y1 = box
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=colour, width=width)
        if options.labels and name:
            text_box = draw.textbbox((x0, y0), name, font=font)
            top = y0 - (text_box[3] - text_box[1]) - 4
            top = top if top >= 0 else y0
            draw.rectangle(
                [x0, top, x0 + text_box[2] - text_box[0] + 6, top + text_box[3] - text_box[1] + 4],
                fill=colour,
            )
            draw.text((x0 + 3, top + 1), name, fill=(0, 0, 0), font=font)


def _ring(draw: ImageDraw.ImageDraw, objects: pd.DataFrame, object_id: int, offset, scale) -> None:
    """A black-and-white ring around one object, large enough to find even a 5-px object."""
    target = objects[objects["object_id"] == object_id]
    if target.empty:
        return
    row = next(target.itertuples(index=False))
    cx = (row.bbox_x + row.bbox_w / 2 - offset[0]) * scale[0]
    cy = (row.bbox_y + row.bbox_h / 2 - offset[1]) * scale[1]
    radius = max(row.bbox_w * scale[0], row.bbox_h * scale[1]) * 0.75 + 10
    for width, colour in ((5, (0, 0, 0)), (2, (255, 255, 255))):
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=colour, width=width)


def _legend_strip(canvas: Image.Image, objects: pd.DataFrame) -> Image.Image:
    columns = ["category_id", "category", *(["colour_id"] if "colour_id" in objects.columns else [])]
    classes = objects[columns].drop_duplicates().sort_values("category_id")
    if classes.empty:
        return canvas
    font = label_font(13)
    row_height, pad = 20, 6
    draw_probe = ImageDraw.Draw(canvas)
    x, rows = pad, 1
    positions = []
    for item in classes.itertuples(index=False):
        label = f"{item.category} ({int(item.category_id)})"
        width = 16 + int(draw_probe.textlength(label, font=font)) + 14
        if x + width > canvas.size[0] and x > pad:
            x, rows = pad, rows + 1
        positions.append((x, (rows - 1) * row_height + pad, row_colour(item), label))
        x += width
    strip = Image.new("RGB", (canvas.size[0], canvas.size[1] + rows * row_height + pad), (250, 250, 250))
    strip.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(strip)
    for x, y, colour, label in positions:
        top = canvas.size[1] + y
        draw.rectangle([x, top + 2, x + 12, top + 14], fill=colour, outline=(0, 0, 0))
        draw.text((x + 16, top), label, fill=(20, 20, 20), font=font)
    return strip


def _crop_region(row: Any, frame: tuple[int, int]) -> tuple[float, float, float, float]:
    x, y, w, h = (
        float(row.bbox_x),
        float(row.bbox_y),
        max(float(row.bbox_w), 1.0),
        max(float(row.bbox_h), 1.0),
    )
    margin_x = max(w * CROP_CONTEXT, CROP_MIN_CONTEXT_PX)
    margin_y = max(h * CROP_CONTEXT, CROP_MIN_CONTEXT_PX)
    side = max(w + 2 * margin_x, h + 2 * margin_y, CROP_MIN_SIDE_PX)  # square crops tile evenly in a gallery
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(cx - side / 2, 0.0), max(frame[0] - side, 0.0))
    y0 = min(max(cy - side / 2, 0.0), max(frame[1] - side, 0.0))
    return x0, y0, min(x0 + side, float(frame[0])), min(y0 + side, float(frame[1]))


def render(
    record: Mapping[str, Any], objects: pd.DataFrame, options: DrawOptions = DrawOptions()
) -> Image.Image:
    """Draw an image (or the crop around ``options.crop_object``) with its objects; never raises on bad files."""
    frame = _frame_size(record)
    if options.crop_object is not None:
        target = objects[objects["object_id"] == options.crop_object]
        if target.empty:
            raise KeyError(f"object {options.crop_object} is not among the objects given")
        region = _crop_region(next(target.itertuples(index=False)), frame)
    else:
        region = (0.0, 0.0, float(frame[0]), float(frame[1]))
    region_w, region_h = max(region[2] - region[0], 1.0), max(region[3] - region[1], 1.0)
    box_w, box_h = options.box or (options.max_side, options.max_side)
    fit = min(box_w / region_w, box_h / region_h)
    if options.crop_object is None:
        fit = min(1.0, fit)  # whole images are never enlarged; small crops are, so they can be judged
    out_size = (max(1, round(region_w * fit)), max(1, round(region_h * fit)))
    loaded = _load(record, region_scale=min(1.0, fit))
    if isinstance(loaded, str):
        canvas = _placeholder(out_size, loaded)
        reason = loaded
    else:
        # the decoded picture may differ from the annotated frame (reduced decode, or a size mismatch)
        kx, ky = loaded.size[0] / frame[0], loaded.size[1] / frame[1]
        box = (region[0] * kx, region[1] * ky, region[2] * kx, region[3] * ky)
        canvas = loaded.resize(out_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
        reason = ""
    scale = (out_size[0] / region_w, out_size[1] / region_h)
    shown = objects[~objects["object_id"].isin(options.hide_objects)] if options.hide_objects else objects
    _draw_objects(canvas, shown, options, (region[0], region[1]), scale)
    if reason:
        _caption(canvas, reason)
    if options.box:
        framed = Image.new("RGB", options.box, LETTERBOX)
        framed.paste(canvas, ((options.box[0] - canvas.size[0]) // 2, (options.box[1] - canvas.size[1]) // 2))
        canvas = framed
    if options.legend:
        canvas = _legend_strip(canvas, objects)
    return canvas
