"""Out-of-fold predictions: K models on K-1 folds each; every image predicted by the model that never saw it.

A model's opinion about a label it was trained on is biased towards that label (it learns some of
the errors), so cleanlab and ObjectLab ask for out-of-sample predictions. `cocolens train --folds K`
splits the training dataset by image (seeded), trains one model per fold on the other K-1 folds,
predicts the held-out fold with it, and imports the union as one model on the training dataset,
whose predictions then feed the label-error scores.

Each fold model picks its best epoch on the job's val dataset when that is another dataset; when
train and val are the same dataset, on its held-out fold (the fold it then predicts: the choice of
epoch sees those labels, the weights never do). The assignment and, per fold, the training and
predicted image ids are recorded in JOB_DIR/folds.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from models.config import TrainConfig
from models.data import Frames

FOLDS_FILE = "folds.json"


def assign_folds(image_ids: Iterable[int], k: int, seed: int) -> dict[int, int]:
    """image id → fold 0..k-1: a seeded shuffle dealt round-robin, so fold sizes differ by one at most."""
    ids = sorted({int(i) for i in image_ids})
    if k < 2:
        raise ValueError(f"folds must be >= 2, got {k}")
    if len(ids) < k:
        raise ValueError(f"{k} folds need at least {k} usable images, the dataset has {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[index]: position % k for position, index in enumerate(order)}


def subset(frames: Frames, image_ids: set[int]) -> Frames:
    """The images in `image_ids` and their objects (categories unchanged: every fold model has them all)."""
    images = frames.images[frames.images["image_id"].isin(image_ids)]
    objects = frames.objects[frames.objects["image_id"].isin(image_ids)]
    return Frames(images, objects, frames.categories)


def oof_model_name(name: str, k: int) -> str:
    """The imported model's name says what it is: NAME-oofK."""
    suffix = f"-oof{k}"
    return name if name.endswith(suffix) else name + suffix


def train_out_of_fold(
    job_dir: Path,
    job: dict[str, Any],
    config: TrainConfig,
    train: Frames,
    val: Frames | None,
    should_stop: Callable[[], bool],
    on_event: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Train config.folds models and write the union of their held-out predictions; returns
    {'checkpoint': first fold's, 'checkpoints': all, 'results': union results JSON, 'dataset'}.

    `val` is None when the job's val dataset is its train dataset (then each fold validates on
    its held-out images).
    """
    from models.job_run import event_recorder, steps_per_epoch
    from models.job_state import RESULTS_FILE, JobCancelled, update_job
    from models.predict import predict_to_file
    from models.train import fit
    from store.project import write_json_atomic

    k = config.folds
    usable = train.images
    if "status" in usable.columns:
        usable = usable[usable["status"] == "ok"]
    assignment = assign_folds(usable["image_id"], k, config.seed)
    everything = set(assignment)
    fold_config = config.replace(folds=0)
    record: dict[str, Any] = {
        "k": k,
        "seed": config.seed,
        "assignment": {str(i): f for i, f in sorted(assignment.items())},
        "validation": "held-out fold" if val is None else f"dataset {job['val']!r}",
        "folds": [],
    }
    write_json_atomic(job_dir / FOLDS_FILE, record)
    union: list[dict[str, Any]] = []
    checkpoints: list[str] = []
    for fold in range(k):
        held = {i for i, f in assignment.items() if f == fold}
        seen = everything - held
        fold_dir = job_dir / f"fold_{fold}"
        per_epoch = steps_per_epoch(len(seen), fold_config)
        update_job(job_dir, phase=f"training fold {fold + 1} of {k}", steps_per_epoch=per_epoch)
        summary = fit(
            fold_config,
            subset(train, seen),
            val if val is not None else subset(train, held),
            fold_dir,
            on_progress=event_recorder(job_dir, per_epoch, on_event, {"fold": fold, "folds": k}),
            should_stop=should_stop,
        )
        if summary["stopped"] or should_stop():
            raise JobCancelled()
        if not summary["checkpoint"]:
            raise RuntimeError(f"fold {fold} ended without a checkpoint (no epoch was evaluated)")
        update_job(job_dir, phase=f"predicting fold {fold + 1} of {k} with the model that never saw it")
        held_images = subset(train, held).images
        results_path = fold_dir / RESULTS_FILE
        count = predict_to_file(
            summary["checkpoint"],
            held_images,
            results_path,
            device=config.device,
            score_threshold=config.score_threshold,
            batch_size=max(1, min(config.batch_size, 4)),
        )
        results = json.loads(results_path.read_text())
        union.extend(results)
        checkpoints.append(summary["checkpoint"])
        record["folds"].append(
            {
                "fold": fold,
                "train_image_ids": sorted(seen),
                "predicted_image_ids": sorted(held),
                "checkpoint": summary["checkpoint"],
                "best_epoch": summary["best_epoch"],
                "predictions": count,
            }
        )
        write_json_atomic(job_dir / FOLDS_FILE, record)
    if not union:
        raise RuntimeError(
            f"the {k} fold models made no prediction with score >= {config.score_threshold}: "
            "nothing to import (train longer or lower score_threshold)"
        )
    results_path = job_dir / RESULTS_FILE
    write_json_atomic(results_path, union)
    update_job(job_dir, predictions=len(union), predictions_file=str(results_path), checkpoints=checkpoints)
    return {
        "checkpoint": checkpoints[0],
        "checkpoints": checkpoints,
        "results": results_path,
        "dataset": job["train"],
    }
