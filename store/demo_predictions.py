"""Demo models: GENERATED predictions for the demo datasets, so every model page has something to show.

The demo scenes are replayed from the generator's seeds, which gives the *true* shapes in every
image — including the ones the careless ``demo_crowd`` labellers left out. Predictions are made
from that truth with the mistakes real detectors make: misses (more on tiny objects and on dark,
over-exposed or blurry images), loose boxes, wrong classes, duplicates and background false
positives. Because the model sees true shapes, the crowd dataset's unlabelled shapes become
confident "overlooked" predictions and its swapped labels "swapped" candidates: the
label-errors-from-predictions gallery has real label errors to find.

Models: ``demo_model`` and a weaker ``demo_model_small`` on ``demo_reviewed`` (model vs model),
``demo_model_crowd`` on ``demo_crowd``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DemoModel:
    """How good a generated model is: one knob per kind of mistake (probabilities per object)."""

    name: str
    dataset: str
    seed: int
    miss: float  # a true shape gets no prediction
    miss_hard: float  # … on tiny objects and dark / over-exposed / blurry images
    loose: float  # the box is badly located (IoU mostly 0.3–0.6)
    wrong_class: float  # the class is wrong
    duplicate: float  # a second, lower-scored box on the same shape
    background: float  # mean background false positives per image


DEMO_MODELS = (
    DemoModel("demo_model", "demo_reviewed", 11, 0.05, 0.20, 0.08, 0.06, 0.06, 0.5),
    DemoModel("demo_model_small", "demo_reviewed", 12, 0.14, 0.55, 0.18, 0.12, 0.10, 1.0),
    DemoModel("demo_model_crowd", "demo_crowd", 13, 0.05, 0.20, 0.08, 0.06, 0.06, 0.5),
)
# The generator's datasets: name → (images, seed, noisy), as in store.demo.build_demo_project.
DEMO_DATASETS = {"demo_reviewed": (60, 1, False), "demo_crowd": (60, 2, True)}


@dataclass(frozen=True)
class TrueShape:
    image_id: int
    kind: str
    polygon: np.ndarray
    labelled: bool  # the dataset has a label for it (crowd labellers skipped some)
    hard: bool  # tiny, or on a dark / over-exposed / blurry image


def replay_scenes(name: str) -> list[TrueShape]:
    """Every true shape of a demo dataset, replaying the generator's random draws in order.

    Mirrors :func:`store.demo.generate_demo_dataset` draw for draw (the scene, then the labelling
    noise); :func:`check_replay` verifies the result against the stored labels.
    """
    from store import demo

    n_images, seed, noisy = DEMO_DATASETS[name]
    rng = np.random.default_rng(seed)
    shapes: list[TrueShape] = []
    previous = None
    for image_id in range(1, n_images + 1):
        width, height = (640, 480) if image_id % 7 else (480, 640)
        if image_id % 23 == 0:
            width, height = 1200, 300
        tiny = image_id % 13 == 0
        _, objects = demo._scene(rng, width, height, int(rng.integers(1, 7)), tiny=tiny)
        hard = tiny or image_id % 10 in (3, 6, 8)
        if image_id % 17 == 0 and previous is not None:
            objects, hard = previous
        for index, (kind, poly) in enumerate(objects):
            if noisy and rng.random() < 0.12:
                pass  # swapped label: the shape itself keeps its true class
            if noisy and rng.random() < 0.10:
                rng.uniform(8, 20)  # loose label box
            labelled = not (noisy and rng.random() < 0.08 and index > 0)
            shapes.append(TrueShape(image_id, kind, poly, labelled, hard))
        previous = (objects, hard)
    return shapes


def check_replay(shapes: list[TrueShape], objects: pd.DataFrame) -> None:
    """The replayed labelled shapes must be the stored labels (same images, same count per image)."""
    replayed = pd.Series([s.image_id for s in shapes if s.labelled]).value_counts().sort_index()
    stored = objects["image_id"].value_counts().sort_index()
    # the crowd set adds one duplicated label every 19th image; nothing else may differ
    difference = stored.sub(replayed, fill_value=0)
    extra = difference[difference != 0]
    if not (extra.index % 19 == 0).all() or not (extra == 1).all():
        raise RuntimeError(
            "demo scenes no longer replay the generator (store.demo changed): update replay_scenes"
        )


def _clip_box(box: np.ndarray, width: int, height: int) -> list[float]:
    x0, y0 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x1, y1 = min(float(width), float(box[0] + box[2])), min(float(height), float(box[1] + box[3]))
    return [round(x0, 2), round(y0, 2), round(max(1.0, x1 - x0), 2), round(max(1.0, y1 - y0), 2)]


def _record(
    image_id: int, category_id: int, polygon: np.ndarray, score: float, size: tuple[int, int]
) -> dict[str, Any]:
    width, height = size
    poly = np.column_stack([np.clip(polygon[:, 0], 0, width), np.clip(polygon[:, 1], 0, height)])
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    box = _clip_box(np.array([x0, y0, x1 - x0, y1 - y0]), width, height)
    return {
        "image_id": int(image_id),
        "category_id": int(category_id),
        "bbox": box,
        "score": round(float(score), 4),
        "segmentation": [[round(float(v), 2) for v in poly.reshape(-1)]],
    }


def _moved(polygon: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """The polygon shifted and scaled by ``spread`` of its size (0.04: a good box, 0.35: a loose one)."""
    centre = polygon.mean(axis=0)
    size = np.ptp(polygon, axis=0)
    shift = rng.normal(0, spread, 2) * size
    scale = 1 + rng.normal(0, spread, 2)
    return (polygon - centre) * np.clip(scale, 0.5, 2.0) + centre + shift


def generate_model_predictions(
    model: DemoModel, shapes: list[TrueShape], sizes: dict[int, tuple[int, int]]
) -> list[dict[str, Any]]:
    """COCO results for one demo model: true shapes seen with ``model``'s mistakes."""
    from store.demo import CLASSES

    rng = np.random.default_rng(model.seed)
    results: list[dict[str, Any]] = []
    for shape in shapes:
        size = sizes[shape.image_id]
        true_class = CLASSES.index(shape.kind) + 1
        if not shape.labelled:
            # an unlabelled real shape: a good model finds it confidently → an "overlooked" label error
            results.append(_record(shape.image_id, true_class, _moved(shape.polygon, rng, 0.02), 0.97, size))
            continue
        if rng.random() < (model.miss_hard if shape.hard else model.miss):
            continue
        category, score = true_class, float(rng.beta(8, 1.5))
        if rng.random() < model.wrong_class:
            category = int(rng.choice([c for c in (1, 2, 3) if c != true_class]))
            score = float(rng.uniform(0.3, 0.8))
        loose = rng.random() < model.loose
        polygon = _moved(shape.polygon, rng, 0.35 if loose else 0.04)
        if loose:
            score *= 0.8
        results.append(_record(shape.image_id, category, polygon, score, size))
        if rng.random() < model.duplicate:
            results.append(
                _record(shape.image_id, category, _moved(shape.polygon, rng, 0.06), score * 0.7, size)
            )
    for image_id, (width, height) in sizes.items():
        for _ in range(int(rng.poisson(model.background))):
            w, h = rng.uniform(15, width / 4), rng.uniform(15, height / 4)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            results.append(
                _record(image_id, int(rng.integers(1, 4)), box, rng.uniform(0.05, 0.55), (width, height))
            )
    return results


def add_demo_model(project_root: str | Path) -> list[str]:
    """Import the demo models missing from a demo project; return the names imported."""
    from store.predictions_import import import_predictions
    from store.project import Project

    project = Project(project_root)
    added = []
    for model in DEMO_MODELS:
        if model.name in project.models() or model.dataset not in project.datasets():
            continue
        folder = project.dataset_dir(model.dataset)
        images = pd.read_parquet(folder / "images.parquet", columns=["image_id", "width", "height"])
        objects = pd.read_parquet(folder / "objects.parquet", columns=["image_id"])
        shapes = replay_scenes(model.dataset)
        check_replay(shapes, objects)
        sizes = {int(i): (int(w), int(h)) for i, w, h in images.itertuples(index=False)}
        results = generate_model_predictions(model, shapes, sizes)
        source = project.root / "demo_source" / f"{model.name}_predictions.json"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(json.dumps(results))
        import_predictions(
            source, project.root, model.name, dataset=model.dataset, source={"generated": True}
        )
        added.append(model.name)
    return added
