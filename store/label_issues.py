"""The label-error pass for a dataset: gather its evidence from the store, score, and store the queue.

Inputs: the dataset's labels and image sizes, its crop embeddings (when ``metrics --embeddings``
ran) and the predictions of the newest model imported or trained for it. Outputs, written
atomically after the metric files so a present ``label_issues/meta.json`` means the run is whole:

* ``metrics/object__label_issue.parquet`` and ``metrics/image__missing_label.parquet``;
* ``label_issues/objects.parquet`` — one row per label: score, kind, class probabilities per kind,
  suggested class / box, fix, and the evidence columns the app explains it with;
* ``label_issues/candidates.parquet`` — predictions no label accounts for, with their probability
  of being an overlooked object (the "add this box" fixes);
* ``label_issues/meta.json`` — which evidence was used, the model, planted counts, timings and a
  fingerprint of the inputs, so an unchanged dataset is not recomputed.

The caller holds the project's writer lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrics.label_errors import LABEL_ISSUE, MISSING_LABEL, find_label_issues
from store.commit_journal import commit_moves, discard_stage
from store.metric_files import metric_frame, write_metric
from store.project import Project, write_json_atomic, write_parquet_atomic

FOLDER = "label_issues"
FORMAT_VERSION = 1  # bump when the scoring changes: every dataset is recomputed on the next run
BOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]
MAX_PREDICTIONS_PER_IMAGE = 100


def _project(project: Project | str | os.PathLike[str]) -> Project:
    return project if isinstance(project, Project) else Project(project)


def issues_dir(project: Project | str | os.PathLike[str], dataset: str) -> Path:
    return _project(project).dataset_dir(dataset) / FOLDER


def load_meta(project: Project | str | os.PathLike[str], dataset: str) -> dict[str, Any] | None:
    try:
        return json.loads((issues_dir(project, dataset) / "meta.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def model_for(project: Project, dataset: str) -> str | None:
    """The newest model whose predictions are for ``dataset`` (None when there is none)."""
    best: tuple[str, str] | None = None
    for name in project.models():
        try:
            meta = project.model_meta(name)
        except (OSError, ValueError):
            continue
        if meta.get("dataset") != dataset or not (project.model_dir(name) / "predictions.parquet").is_file():
            continue
        stamp = str(meta.get("imported_at", ""))
        if best is None or stamp > best[0]:
            best = (stamp, name)
    return best[1] if best else None


def _object_vectors(project: Project, dataset: str, labels: pd.DataFrame) -> np.ndarray | None:
    from store.embedding_store import load_meta as embedding_meta
    from store.embedding_store import load_vectors

    if embedding_meta(project, dataset) is None:
        return None
    vectors, keys = load_vectors(project, dataset, "object")
    out = np.full((len(labels), vectors.shape[1] if vectors.ndim == 2 else 0), np.nan, dtype=np.float32)
    if not len(keys):
        return out
    position = pd.Series(
        np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys[["image_id", "object_id"]])
    )
    found = position.reindex(pd.MultiIndex.from_frame(labels[["image_id", "object_id"]])).to_numpy(
        dtype=float
    )
    has = np.isfinite(found)
    out[has] = np.asarray(vectors)[found[has].astype(np.int64)]
    return out


class CropCache:
    """Embeddings of planted boxes, kept beside the queue so only the first pass after new embeddings
    pays for them (the boxes depend on the labels and the seed only, never on a model).

    ``label_issues/planted_crops.npy`` + ``planted_crops_keys.parquet`` (image_id and the box rounded to
    0.01 px) + ``planted_crops.json`` naming the embedding run they belong to; another run → empty.
    """

    def __init__(self, folder: Path, run: str):
        self.folder, self.run = folder, run
        self.vectors: dict[tuple, np.ndarray] = {}
        self.added = 0
        try:
            if json.loads((folder / "planted_crops.json").read_text()).get("run") == run:
                keys = pd.read_parquet(folder / "planted_crops_keys.parquet")
                vectors = np.load(folder / "planted_crops.npy", allow_pickle=False)
                self.vectors = dict(zip(map(tuple, keys.to_numpy().tolist()), vectors, strict=True))
        except (FileNotFoundError, NotADirectoryError, ValueError, KeyError):
            self.vectors = {}

    @staticmethod
    def key(image_id: int, box: np.ndarray) -> tuple:
        return (float(image_id), *np.round(np.asarray(box, dtype=float), 2).tolist())

    def save(self) -> None:
        if not self.added:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = pd.DataFrame(list(self.vectors), columns=["image_id", "x", "y", "w", "h"])
        tmp = self.folder / f".planted_crops.{os.getpid()}.npy"
        np.save(tmp, np.stack(list(self.vectors.values())).astype(np.float32), allow_pickle=False)
        os.replace(tmp, self.folder / "planted_crops.npy")
        write_parquet_atomic(self.folder / "planted_crops_keys.parquet", keys)
        write_json_atomic(self.folder / "planted_crops.json", {"run": self.run, "crops": len(keys)})


def _box_embedder(images: pd.DataFrame, cache: CropCache):
    """Embeds new boxes (planted errors) on the images they belong to; NaN rows for unreadable images."""
    plain = _plain_box_embedder(images)

    def embed(image_ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        keys = [cache.key(i, b) for i, b in zip(image_ids, boxes, strict=True)]
        missing = [n for n, k in enumerate(keys) if k not in cache.vectors]
        if missing:
            fresh = plain(np.asarray(image_ids)[missing], np.asarray(boxes)[missing])
            for n, row in zip(missing, fresh, strict=True):
                cache.vectors[keys[n]] = row
            cache.added += len(missing)
        return np.stack([cache.vectors[k] for k in keys]) if keys else np.empty((0, 1), np.float32)

    return embed


def _plain_box_embedder(images: pd.DataFrame):
    """Embeds boxes on the images they belong to with the crop backbone; NaN rows for unreadable images."""
    from metrics.embeddings import embed_objects

    exif = images["exif_orientation"].astype("Float64").fillna(1).to_numpy()
    applied = images["orientation_applied"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    info = pd.DataFrame(
        {
            "path": images["path"].to_numpy(),
            "ok": (images["status"] == "ok").to_numpy(),
            "exif": (exif == 1) | applied,
        },
        index=images["image_id"].to_numpy(),
    )

    def embed(image_ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        rows = info.reindex(image_ids)
        ok = rows["ok"].fillna(False).to_numpy(dtype=bool)
        out: np.ndarray | None = None
        for flag in (True, False):
            pick = np.flatnonzero(ok & (rows["exif"].fillna(True).to_numpy(dtype=bool) == flag))
            if not pick.size:
                continue
            vectors = embed_objects(rows["path"].to_numpy()[pick].tolist(), boxes[pick], apply_exif=flag)
            if out is None:
                out = np.full((len(image_ids), vectors.shape[1]), np.nan, dtype=np.float32)
            out[pick] = vectors
        return out if out is not None else np.full((len(image_ids), 1), np.nan, dtype=np.float32)

    return embed


def _fingerprint(project: Project, dataset: str, model: str | None) -> str:
    digest = hashlib.sha1((project.dataset_dir(dataset) / "dataset.json").read_bytes())
    emb = project.dataset_dir(dataset) / "embeddings" / "meta.json"
    if emb.is_file():
        digest.update(emb.read_bytes())
    if model:
        digest.update((project.model_dir(model) / "model.json").read_bytes())
    digest.update(json.dumps([FORMAT_VERSION, LABEL_ISSUE.version, MISSING_LABEL.version, model]).encode())
    return digest.hexdigest()


def compute_label_issues(
    project: Project | str | os.PathLike[str], dataset: str, *, force: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Score a dataset's labels and store the review queue; skipped when nothing it reads changed."""
    project = _project(project)
    folder = project.dataset_dir(dataset)
    model = model_for(project, dataset)
    fingerprint = _fingerprint(project, dataset, model)
    meta = load_meta(project, dataset)
    if not force and meta and meta.get("fingerprint") == fingerprint:
        return {"skipped": True, "flagged": meta.get("flagged"), "model": model}
    started = time.perf_counter()
    images = pd.read_parquet(folder / "images.parquet")
    labels = pd.read_parquet(
        folder / "objects.parquet", columns=["image_id", "object_id", "category_id", *BOX, "iscrowd"]
    )
    vectors = _object_vectors(project, dataset, labels)
    predictions = None
    if model:
        predictions = pd.read_parquet(
            project.model_dir(model) / "predictions.parquet",
            columns=["prediction_id", "image_id", "category_id", "score", *BOX],
        )
        # COCO's max_dets: a model's 100 best boxes per image are its answer; also bounds the
        # per-image pair work (a file with thousands of boxes on one image would be quadratic).
        predictions = (
            predictions.sort_values(["image_id", "score"], ascending=[True, False], kind="stable")
            .groupby("image_id", sort=False)
            .head(MAX_PREDICTIONS_PER_IMAGE)
            .sort_index()
        )
    cache = None
    if vectors is not None:
        from store.embedding_store import load_meta as embedding_meta

        cache = CropCache(folder / FOLDER, str((embedding_meta(project, dataset) or {}).get("fingerprint")))
    result = find_label_issues(
        labels,
        images[["image_id", "width", "height"]],
        vectors=vectors,
        embed=_box_embedder(images, cache) if cache is not None else None,
        predictions=predictions,
        seed=seed,
    )
    if cache is not None:
        cache.save()
    objects = result.objects
    # All outputs are staged, then made visible by one journalled burst of renames
    # (store.commit_journal): a kill mid-write never leaves new scores beside an old meta.json.
    stage = project.staging_dir / "label-issues" / dataset
    shutil.rmtree(stage, ignore_errors=True)
    write_metric(
        stage,
        LABEL_ISSUE,
        metric_frame(
            dataset,
            LABEL_ISSUE,
            objects["image_id"].to_numpy(),
            objects["label_issue"].to_numpy(),
            objects["object_id"].to_numpy(),
        ),
    )
    write_metric(
        stage,
        MISSING_LABEL,
        metric_frame(
            dataset,
            MISSING_LABEL,
            result.images["image_id"].to_numpy(),
            result.images["missing_label"].to_numpy(),
        ),
    )
    write_parquet_atomic(stage / FOLDER / "objects.parquet", objects.assign(dataset=dataset))
    write_parquet_atomic(
        stage / FOLDER / "candidates.parquet", result.candidates.assign(dataset=dataset, model=model or "")
    )
    flagged = int((objects["label_issue"] >= FLAG_THRESHOLD).sum())
    missing = int((result.images["missing_label"] >= FLAG_THRESHOLD).sum())
    info = {
        **result.info,
        "model": model,
        "fingerprint": fingerprint,
        "flagged": flagged,
        "missing_images": missing,
        "threshold": FLAG_THRESHOLD,
        "seconds": round(time.perf_counter() - started, 2),
        "format": FORMAT_VERSION,
    }
    write_json_atomic(stage / FOLDER / "meta.json", info)
    staged = [*sorted((stage / "metrics").glob("*.parquet")), *sorted((stage / FOLDER).iterdir())]
    try:
        commit_moves(project.root, stage, [(path, folder / path.relative_to(stage)) for path in staged])
    finally:
        discard_stage(stage, project.staging_dir)
    return {
        "skipped": False,
        "flagged": flagged,
        "missing_label_images": missing,
        "model": model,
        "evidence": result.info["evidence"],
        "seconds": info["seconds"],
    }


# A label (image) counts as a likely error in the report and the Summary from this score on.
FLAG_THRESHOLD = 0.5


def rescore_after_model(project_root: str | os.PathLike[str], dataset: str) -> dict[str, Any]:
    """The pass after a model's predictions were committed (import, training job, predict).

    Best effort under the writer lock: the predictions are already in the project, so a failure is
    returned in the summary (``cocolens metrics`` retries it), never raised as a failed import.
    """
    try:
        project = Project(project_root)
        with project.writing():
            return compute_label_issues(project, dataset)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, retried by `cocolens metrics`
        return {"error": f"{type(exc).__name__}: {exc}"}
