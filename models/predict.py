"""Inference: a saved checkpoint → COCO result dicts in the original image frame and category ids;
written as a COCO results file (predict_to_file), and imported as a model (`cocolens predict`)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from models.data import image_to_tensor, load_image, scaled_size
from models.train import encode_masks
from store.errors import InputError
from store.project import Project, check_name, write_json_atomic

MASK_CHUNK = 8  # masks upsampled to full size a few at a time: 100 × 8 MP floats would be 3 GB


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    label_to_category: dict[int, int]
    meta: dict[str, Any]


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint written by models.train.fit (safe load: weights_only=True)."""
    from models.detectors import build_model

    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    meta = payload["meta"]
    model = build_model(
        meta["model"],
        int(meta["num_classes"]),
        bool(meta.get("pretrained_backbone", False)),  # same norm layers as in training
        int(meta["image_size"]),
        load_weights=False,
    )
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    label_to_category = {int(k): int(v) for k, v in meta["label_to_category"].items()}
    model.label_to_category = label_to_category  # predict() finds the mapping on the model
    return LoadedCheckpoint(model, label_to_category, meta)


def _results_for_image(
    output: dict[str, torch.Tensor],
    image_id: int,
    width: int,
    height: int,
    label_to_category: dict[int, int],
    score_threshold: float,
) -> list[dict[str, Any]]:
    keep = output["scores"] >= score_threshold
    scores = output["scores"][keep].float()
    labels = output["labels"][keep]
    boxes = output["boxes"][keep].float()
    masks = output["masks"][keep].float()  # N×1×h×w probabilities in the resized frame
    if len(scores) == 0:
        return []
    in_h, in_w = masks.shape[-2:]
    scale = torch.tensor([width / in_w, height / in_h] * 2, device=boxes.device)
    boxes = boxes * scale
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    rles: list[dict[str, Any]] = []
    for start in range(0, len(masks), MASK_CHUNK):
        chunk = masks[start : start + MASK_CHUNK]
        if (in_h, in_w) != (height, width):
            chunk = nn.functional.interpolate(
                chunk, size=(height, width), mode="bilinear", align_corners=False
            )
        rles.extend(encode_masks((chunk[:, 0] > 0.5).cpu().numpy()))
    boxes_np = boxes.cpu().numpy().astype(np.float64)
    results = []
    for box, label, score, rle in zip(boxes_np, labels.tolist(), scores.tolist(), rles, strict=True):
        x1, y1, x2, y2 = box.tolist()
        results.append(
            {
                "image_id": image_id,
                "category_id": label_to_category[int(label)],
                "score": float(score),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "segmentation": rle,
            }
        )
    return results


def prepare_prediction(
    model: nn.Module,
    images_df: pd.DataFrame,
    device: str | torch.device,
    label_to_category: dict[int, int] | None,
) -> tuple[dict[int, int], torch.device, pd.DataFrame]:
    """What every prediction pass (whole images, tiles) starts from: the label → COCO id map (given,
    or attached by load_checkpoint), the model in eval mode on ``device``, and the 'ok' images in
    image-id order."""
    mapping = label_to_category or getattr(model, "label_to_category", None)
    if mapping is None:
        raise ValueError("label_to_category is needed (load_checkpoint attaches it to the model)")
    device = torch.device(device)
    model.eval().to(device)
    rows = images_df
    if "status" in rows.columns:
        rows = rows[rows["status"] == "ok"]
    return mapping, device, rows.sort_values("image_id").reset_index(drop=True)


@torch.inference_mode()
def predict(
    model: nn.Module,
    images_df: pd.DataFrame,
    device: str | torch.device,
    score_threshold: float = 0.05,
    max_side: int = 1024,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    label_to_category: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """COCO result dicts for every image with status 'ok'.

    bbox is xywh and segmentation compressed RLE (str counts), both in the original annotated
    frame (width × height of the image record); category_id is the original COCO id.
    progress(done, total) is called after each batch.
    """
    mapping, device, rows = prepare_prediction(model, images_df, device, label_to_category)
    total = len(rows)
    results: list[dict[str, Any]] = []
    for start in range(0, total, batch_size):
        batch = rows.iloc[start : start + batch_size]
        tensors = []
        for row in batch.itertuples(index=False):
            width, height = int(row.width), int(row.height)
            image = load_image(str(row.path), bool(getattr(row, "orientation_applied", False)), width, height)
            size = scaled_size(width, height, max_side)
            if size != (width, height):
                image = image.resize(size, Image.BILINEAR)  # as in training
            tensors.append(image_to_tensor(image).to(device))
        outputs = model(tensors)
        for row, output in zip(batch.itertuples(index=False), outputs, strict=True):
            results.extend(
                _results_for_image(
                    output, int(row.image_id), int(row.width), int(row.height), mapping, score_threshold
                )
            )
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return results


def load_checkpoint_checked(checkpoint: str | Path, device: str | torch.device) -> LoadedCheckpoint:
    """load_checkpoint, with a one-line InputError for a missing or foreign file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(str(checkpoint), "no such checkpoint file", field="--checkpoint")
    try:
        return load_checkpoint(path, device)
    except Exception as error:  # unpickling refused, wrong keys, wrong shapes: not our checkpoint
        if isinstance(error, pickle.UnpicklingError):
            detail = "torch.load(weights_only=True) refused it: it holds more than tensors and plain data"
        else:
            detail = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        raise InputError(
            str(checkpoint), f"not a cocolens checkpoint ({detail})", field="--checkpoint"
        ) from None


def predict_to_file(
    checkpoint: str | Path,
    images: Any,
    out_file: Path,
    device: str = "auto",
    score_threshold: float | None = None,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    categories: Any = None,
    tile_size: int | None = None,
    tile_overlap: float | None = None,
) -> int:
    """Run a checkpoint on `images` (the store's images table), write COCO results JSON; returns the count.

    Boxes are xywh and masks compressed RLE in the original image frame, category ids the dataset's.
    device: 'auto', 'cpu', 'cuda' or 'cuda:N'. score_threshold: None keeps the checkpoint's training
    setting. progress(done, total) after each batch (tiles: each image). categories: the dataset's
    categories table; when given, a checkpoint predicting ids it lacks is refused (InputError).
    tile_size / tile_overlap (pixels / fraction of a tile): None predicts as the checkpoint was
    trained (whole images, or its tiles); tile_size 0 forces whole images.
    """
    from models.devices import check_device
    from models.train import resolve_device

    check_device(device)
    torch_device = resolve_device(device)
    loaded = load_checkpoint_checked(checkpoint, torch_device)
    if categories is not None:
        known = {int(c) for c in categories["category_id"]}
        missing = sorted(set(loaded.label_to_category.values()) - known)
        if missing:
            raise InputError(
                str(checkpoint),
                f"predicts category ids {missing} that the dataset does not have",
                field="--dataset",
            )
    threshold = loaded.meta["config"]["score_threshold"] if score_threshold is None else score_threshold
    tile = int(loaded.meta["config"].get("tile_size", 0) if tile_size is None else tile_size)
    common = dict(
        score_threshold=float(threshold),
        max_side=int(loaded.meta["image_size"]),
        progress=progress,
        label_to_category=loaded.label_to_category,
    )
    if tile:  # a checkpoint trained on tiles predicts with them unless told otherwise
        from models.tiles import predict_tiled

        overlap = loaded.meta["config"].get("tile_overlap", 0.2) if tile_overlap is None else tile_overlap
        results = predict_tiled(loaded.model, images, torch_device, tile, float(overlap), **common)
    else:
        results = predict(loaded.model, images, torch_device, batch_size=batch_size, **common)
    write_json_atomic(out_file, results)
    return len(results)


def predict_and_import(
    project: str | Path | Project,
    checkpoint: str | Path,
    dataset: str,
    model: str,
    device: str = "auto",
    score_threshold: float | None = None,
    show_progress: bool = True,
    tile_size: int | None = None,
    tile_overlap: float | None = None,
) -> dict[str, Any]:
    """`cocolens predict`: any checkpoint (loaded with weights_only=True) → results JSON → model `model`.

    The results file stays in PROJECT/jobs/predict/MODEL.json (the import records where it came from).
    show_progress: the prediction's progress on stderr (store.progress_report); the other parameters
    as for predict_to_file. Returns the import's summary with 'label_issues' and 'results_file'.
    """
    from models.frames import dataset_frames, require_project
    from store.progress_report import ProgressReport

    project = require_project(project if isinstance(project, Project) else Project(project))
    check_name("model", model)
    frames = dataset_frames(project, dataset)
    results_path = project.jobs_dir / "predict" / f"{model}.json"
    report = ProgressReport() if show_progress else None
    count = predict_to_file(
        checkpoint,
        frames.images,
        results_path,
        device=device,
        score_threshold=score_threshold,
        progress=(lambda done, total: report("predict", done, total)) if report else None,
        categories=frames.categories,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
    )
    if count == 0:
        raise InputError(
            str(checkpoint),
            f"made no prediction above the score threshold on {dataset!r}",
            field="--checkpoint",
        )
    from store.predictions_import import import_predictions

    summary = import_predictions(
        results_path,
        project.root,
        model=model,
        dataset=dataset,
        source={"checkpoint": str(Path(checkpoint).resolve())},
    )
    from store.label_issues import rescore_after_model

    summary["label_issues"] = rescore_after_model(project.root, dataset)
    return {**summary, "results_file": str(results_path)}
