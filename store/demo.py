"""``cocolens demo``: a generated project (no network) where every view has something to show.

GENERATED DATA, labelled as such in the dataset info: coloured shapes on textured backgrounds,
three classes (circle, square, triangle), two datasets — ``demo_reviewed`` (clean labels) and
``demo_crowd`` (the same kind of scenes labelled carelessly: swapped classes, loose boxes,
missing labels) — plus dark, over-exposed, blurry, duplicate and tiny-object images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["circle", "square", "triangle"]
COLOURS = {"circle": (220, 60, 40), "square": (40, 140, 220), "triangle": (60, 180, 70)}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.integers(90, 170, size=3)
    noise = rng.normal(0, 12, size=(height, width, 1))
    grad = np.linspace(-25, 25, width)[None, :, None]
    return np.clip(base[None, None, :] + noise + grad, 0, 255).astype(np.uint8)


def _shape_polygon(kind: str, cx: float, cy: float, r: float) -> np.ndarray:
    if kind == "circle":
        angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    elif kind == "square":
        angles = np.array([0.25, 0.75, 1.25, 1.75]) * math.pi
    else:
        angles = np.array([-0.5, 1 / 6, 5 / 6]) * math.pi
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)


def _scene(rng: np.random.Generator, width: int, height: int, n_objects: int, tiny: bool = False):
    import cv2

    image = _background(rng, height, width)
    objects = []
    for _ in range(n_objects):
        kind = CLASSES[int(rng.integers(0, 3))]
        r = float(rng.uniform(4, 7)) if tiny else float(rng.uniform(18, 60))
        cx = float(rng.uniform(r, width - r))
        cy = float(rng.uniform(r, height - r))
        poly = _shape_polygon(kind, cx, cy, r)
        cv2.fillPoly(image, [np.round(poly).astype(np.int32)], COLOURS[kind])
        objects.append((kind, poly))
    return image, objects


def _annotation(
    ann_id: int, image_id: int, kind: str, poly: np.ndarray, jitter: float = 0.0
) -> dict[str, Any]:
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    if jitter:
        bbox = [bbox[0] - jitter, bbox[1] - jitter, bbox[2] + 2 * jitter, bbox[3] + 2 * jitter]
    xs, ys = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CLASSES.index(kind) + 1,
        "segmentation": [[round(float(v), 2) for v in poly.reshape(-1)]],
        "bbox": [round(v, 2) for v in bbox],
        "area": round(area, 2),
        "iscrowd": 0,
    }


def generate_demo_dataset(folder: Path, name: str, n_images: int, seed: int, noisy: bool) -> Path:
    """Write images + a COCO file for one generated dataset; return the annotations path."""
    import cv2

    rng = np.random.default_rng(seed)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    previous = None
    for image_id in range(1, n_images + 1):
        width, height = (640, 480) if image_id % 7 else (480, 640)
        if image_id % 23 == 0:
            width, height = 1200, 300  # odd aspect ratio
        kind_of_image = image_id % 10
        image, objects = _scene(rng, width, height, int(rng.integers(1, 7)), tiny=(image_id % 13 == 0))
        if kind_of_image == 3:
            image = (image * 0.12).astype(np.uint8)  # dark
        elif kind_of_image == 6:
            image = np.clip(image.astype(np.int32) + 150, 0, 255).astype(np.uint8)  # over-exposed
        elif kind_of_image == 8:
            image = cv2.GaussianBlur(image, (0, 0), 6)  # blurry
        if image_id % 17 == 0 and previous is not None:
            image, objects, (width, height) = previous  # exact duplicate of the previous image
        file_name = f"{name}_{image_id:04d}.jpg"
        cv2.imwrite(
            str(images_dir / file_name),
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for index, (kind, poly) in enumerate(objects):
            label, jitter = kind, 0.0
            if noisy and rng.random() < 0.12:
                label = CLASSES[(CLASSES.index(kind) + 1) % 3]  # swapped class
            if noisy and rng.random() < 0.10:
                jitter = float(rng.uniform(8, 20))  # loose box
            if noisy and rng.random() < 0.08 and index > 0:
                continue  # missing label
            annotations.append(_annotation(ann_id, image_id, label, poly, jitter))
            ann_id += 1
        if noisy and image_id % 19 == 0 and objects:  # a duplicated label on the same object
            annotations.append(_annotation(ann_id, image_id, objects[0][0], objects[0][1], 1.0))
            ann_id += 1
        previous = (image, objects, (width, height))
    coco = {
        "info": {"description": f"cocolens demo: GENERATED data ({name})", "generated": True},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def build_demo_project(
    project_dir: str | Path, progress: Callable[[str, int, int], None] | None = None
) -> Path:
    """Generate two datasets and import them; rebuilding an existing demo project is a no-op."""
    from store.coco_import import import_coco
    from store.project import Project

    project = Project(project_dir)
    source = project.root / "demo_source"
    for name, n_images, seed, noisy in (("demo_reviewed", 60, 1, False), ("demo_crowd", 60, 2, True)):
        if name in project.datasets():
            continue
        annotations = generate_demo_dataset(source / name, name, n_images, seed, noisy)
        import_coco(
            source / name / "images",
            annotations,
            project.root,
            dataset=name,
            progress=progress,
            prewarm=False,
        )
    from store.demo_predictions import add_demo_model

    add_demo_model(project.root)  # models for the model pages (skips those already there)
    from store.embedding_store import compute_dataset_embeddings

    for name in ("demo_reviewed", "demo_crowd"):  # the Embeddings page and mislabelled gallery
        compute_dataset_embeddings(project, name, progress=progress)  # skips when up to date
    from store import page_summaries
    from store.label_issues import compute_label_issues

    with project.writing():
        for name in ("demo_reviewed", "demo_crowd"):  # the Label errors queue (skips when up to date)
            compute_label_issues(project, name)
        page_summaries.prewarm(project.root)  # the app opens on these: computed once, here
    return project.root
