"""Snapshots of what an import computes, to prove a faster import computes the very same values.

``snapshot(dataset_dir)`` reads every table an import wrote (images, objects, duplicates, one file per
metric) into plain DataFrames with the machine-specific folder replaced by a placeholder.
``hostile_tables()`` builds label tables with every geometry the label metrics treat specially
(multi-ring and flat polygons, rings too short, points far outside the frame, RLEs of the wrong size,
NaN boxes, unknown image sizes, crowd regions, images without objects); ``label_values`` runs every
table metric on them.

Run as a script with the code to be measured first on ``sys.path`` to (re)write the reference files
under ``tests/data/import_reference/`` (the shared sets as per-table digests): they were made with the code before issue 17's speed work
(commit 846cc10) by ``cd OLD_TREE && python /path/to/tests/store/import_reference.py OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "import_reference"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL_SETS = {
    "fruits_nuts": ("fruits_nuts/images", "fruits_nuts/annotations.json"),
    "blood_cells": ("blood_cells/images", "blood_cells/annotations.json"),
}
PLACEHOLDER = "<ROOT>"


def snapshot(dataset_dir: Path, root: Path) -> dict[str, pd.DataFrame]:
    """Every table of an imported dataset, keyed by its file name (paths relative to ``root``)."""
    out: dict[str, pd.DataFrame] = {}
    for path in sorted(dataset_dir.rglob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in ("path", "error"):
            if column in frame.columns:
                frame[column] = (
                    frame[column].astype("string").str.replace(str(root), PLACEHOLDER, regex=False)
                )
        out[path.relative_to(dataset_dir).as_posix()] = frame.reset_index(drop=True)
    return out


def _canonical(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str)


def table_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names, dtypes and exact values (float bit patterns; nested values
    as canonical JSON). Lets the test hold the old import's output of the shared sets as digests: the
    shared data's annotations and file names never enter the repository."""
    import hashlib

    frame = frame.reset_index(drop=True)
    digest = hashlib.sha256(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            values = values.map(_canonical)
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def hostile_tables(seed: int = 17) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label tables with every special case of the label metrics, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    images = [(i, int(w), int(h)) for i, (w, h) in enumerate(rng.integers(8, 400, size=(60, 2)))]
    images.append((60, 100000, 100000))  # too large for one RLE
    rows = []

    def ring(x: float, y: float, w: float, h: float, n: int) -> list[float]:
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        return [float(v) for a in angles for v in (x + w / 2 * (1 + np.cos(a)), y + h / 2 * (1 + np.sin(a)))]

    for k in range(900):
        image_id, width, height = images[int(rng.integers(0, 50))]
        x, y = float(rng.uniform(-20, width)), float(rng.uniform(-20, height))
        w, h = float(rng.uniform(0.5, width / 2 + 2)), float(rng.uniform(0.5, height / 2 + 2))
        kind = k % 12
        seg: object = [ring(x, y, w, h, int(rng.integers(3, 20)))]
        if kind == 1:
            seg = [ring(x, y, w, h, 5), ring(x + w / 3, y, w / 2, h / 2, 4)]  # two rings
        elif kind == 2:
            seg = ring(x, y, w, h, 6)  # a flat ring
        elif kind == 3:
            seg = [[x, y, x + w, y]]  # too short
        elif kind == 4:
            seg = [[x, y, x + 5e6, y, x + w, y + 3e9]]  # far outside: clipped
        elif kind == 5:
            seg = [[round(x), round(y), round(x + w), round(y), round(x + w), round(y + h)]]  # ints
        elif kind == 6:
            seg = None  # box only
        elif kind == 7:
            mask = np.zeros((height, width), dtype=np.uint8, order="F")
            mask[int(max(y, 0)) : int(max(y + h, 1)), int(max(x, 0)) : int(max(x + w, 1))] = 1
            from pycocotools import mask as mask_utils

            rle = mask_utils.encode(mask)
            seg = {"size": rle["size"], "counts": rle["counts"].decode()}
        elif kind == 8:
            seg = {"size": [height + 1, width], "counts": [(height + 1) * width]}  # wrong size
        elif kind == 9:
            seg = [ring(x, y, w, h, 8)]
            x = y = w = h = float("nan")
        elif kind == 10:
            image_id = 999  # no image record
        elif kind == 11:
            seg = "{not json"
        if k % 97 == 0:
            image_id, width, height = images[60]
            seg = [[10.0, 10.0, 20.0, 10.0, 20.0, 20.0]]
        duplicate = k % 31 == 0 and rows
        if duplicate:
            rows.append({**rows[-1], "object_id": k + 1, "iscrowd": int(k % 62 == 0)})
            continue
        text = seg if isinstance(seg, str) else ("" if seg is None else json.dumps(seg))
        rows.append(
            {
                "object_id": k + 1,
                "image_id": image_id,
                "category_id": int(rng.integers(1, 4)),
                "bbox_x": x,
                "bbox_y": y,
                "bbox_w": w,
                "bbox_h": h,
                "area": float(w * h) if k % 50 else 1e12,
                "iscrowd": int(k % 40 == 0),
                "segmentation": text,
            }
        )
    objects = pd.DataFrame(rows)
    frame = pd.DataFrame(images, columns=["image_id", "width", "height"])
    frame.loc[5, ["width", "height"]] = [0, 0]  # an image whose size is unknown
    frame["status"] = "missing"
    return objects, frame


def label_values(objects: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Every table metric (and the invalid-geometry reasons) on the given tables, one column each."""
    from metrics import objects as object_metrics
    from store.metric_runner import table_specs

    out: dict[str, object] = {}
    for spec in table_specs():
        values = np.asarray(spec.func(objects, images), dtype=np.float64)
        out[f"{spec.level}:{spec.name}"] = values
    n = max(len(objects), len(images))
    frame = pd.DataFrame({key: pd.Series(values) for key, values in out.items()}, index=range(n))
    reasons = object_metrics.invalid_geometry_reasons(objects, images)
    frame["object:reasons"] = pd.Series(reasons, dtype="string")
    return frame


def write_references(out: Path) -> None:
    """Import the real sets and run the hostile tables with the code on ``sys.path``; write the results."""
    import tempfile

    from store.coco_import import import_coco

    out.mkdir(parents=True, exist_ok=True)
    label_values(*hostile_tables()).to_parquet(out / "hostile_label_values.parquet")
    digests: dict[str, dict[str, str]] = {}
    for name, (images, ann_file) in REAL_SETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            import_coco(SHARED / images, SHARED / ann_file, Path(tmp) / "p", dataset=name, prewarm=False)
            tables = snapshot(Path(tmp) / "p" / "datasets" / name, SHARED.resolve())
        digests[name] = {key: table_digest(frame) for key, frame in sorted(tables.items())}
    (out / "real_sets_digests.json").write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    write_references(Path(sys.argv[1]) if len(sys.argv) > 1 else REFERENCE_DIR)
