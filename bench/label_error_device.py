"""Real detector output for the label-error bench: train cocolens' light model on the corrupted labels.

Trains maskrcnn_mobilenet_v2_fpn (ImageNet MobileNetV2, offline file) with models.train.fit on every
image of a corrupted COCO json (in-sample, as a user would), predicts them all with
models.predict.predict and writes COCO results (image_id, category_id, bbox xywh, score) to
OUT/trained_insample.json; then, if the time budget allows, 2-fold out-of-fold (train on one half,
predict the other, and back) to OUT/trained_oof.json. Figures go to OUT/label_error_device.json.

On the device machine, from the repo root (data, weights and wheels carried in .gpu_data / .whl):
    TORCH_HOME=.gpu_data/torch python3 bench/label_error_device.py --data .gpu_data/blood_cells --out $OUT
Then here: .venv/bin/python bench/label_error_bench.py --dataset blood_cells --seed 0 \
    --predictions OUT/trained_insample.json --model trained_insample
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.config import load_config  # noqa: E402
from models.data import Frames  # noqa: E402
from models.predict import load_checkpoint, predict  # noqa: E402
from models.train import fit  # noqa: E402
from tests.models.coco_frames import frames_from_coco  # noqa: E402

MODEL = "maskrcnn_mobilenet_v2_fpn"


def subset(frames: Frames, image_ids: set[int]) -> Frames:
    images = frames.images[frames.images.image_id.isin(image_ids)]
    objects = frames.objects[frames.objects.image_id.isin(image_ids)]
    return Frames(images, objects, frames.categories)


def boxes_only(results: list[dict]) -> list[dict]:
    keys = ("image_id", "category_id", "bbox", "score")
    return [{k: r[k] for k in keys} for r in results]


def train_and_predict(
    name: str, train: Frames, target: Frames, args: argparse.Namespace, device: torch.device, epochs: int
) -> tuple[list[dict], dict]:
    """fit() on `train` (val = `target`, evaluated once at the last epoch), then predict `target`."""
    config = load_config(
        model=MODEL,
        pretrained_backbone=True,
        batch_size=args.batch,
        epochs=epochs,
        workers=args.workers,
        max_side=args.side,
        lr=args.lr,
        eval_every=epochs,  # one evaluation, at the end: the last epoch is the checkpoint
        early_stop_patience=10_000,
        device=device.type,
        amp=device.type == "cuda",
        log_every=50,
        seed=args.seed,
    )
    losses: list[float] = []

    def on_progress(p: dict) -> None:
        if p["event"] == "epoch":
            losses.append(p["losses"]["loss"])
            print(
                f"  {name} epoch {p['epoch']}/{epochs} loss {p['losses']['loss']:.3f} {p['epoch_s']:.1f}s",
                flush=True,
            )

    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        summary = fit(config, train, target, run_dir, on_progress)
        fit_s = time.perf_counter() - started
        loaded = load_checkpoint(summary["checkpoint"], device)
        started = time.perf_counter()
        results = predict(
            loaded.model,
            target.images,
            device,
            score_threshold=args.score_threshold,
            max_side=args.side,
            batch_size=8,
        )
        predict_s = time.perf_counter() - started
    bbox = (summary["best_val"] or {}).get("bbox", {})
    record = {
        "name": name,
        "train_images": len(train.images),
        "predict_images": len(target.images),
        "epochs": summary["epochs_run"],
        "steps": summary["epochs_run"] * -(-len(train.images) // args.batch),
        "fit_s": round(fit_s, 1),
        "predict_s": round(predict_s, 1),
        "predictions": len(results),
        "loss_first_epoch": losses[0] if losses else None,
        "loss_last_epoch": losses[-1] if losses else None,
        "val_bbox_AP_vs_corrupted_labels": bbox.get("AP"),
        "val_bbox_AP50_vs_corrupted_labels": bbox.get("AP50"),
    }
    print(json.dumps(record), flush=True)
    return boxes_only(results), record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="folder with annotations.json + images/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--side", type=int, default=416)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-threshold", type=float, default=0.05)
    parser.add_argument("--budget-s", type=float, default=400, help="skip/shorten OOF past this")
    parser.add_argument("--smoke", action="store_true", help="CPU, 4 images, 1 epoch: check the script")
    args = parser.parse_args()
    t0 = time.perf_counter()
    frames = frames_from_coco(args.data / "annotations.json", args.data / "images")
    if args.smoke:
        device = torch.device("cpu")
        keep = set(sorted(frames.images.image_id)[:4])
        frames = subset(frames, keep)
        args.epochs, args.batch, args.workers = 1, 2, 0
    else:
        assert torch.cuda.is_available(), "CUDA is not available"
        device = torch.device("cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
        "images": len(frames.images),
        "objects": len(frames.objects),
        "runs": [],
    }

    def save() -> None:
        report["total_s"] = round(time.perf_counter() - t0, 1)
        (args.out / "label_error_device.json").write_text(json.dumps(report, indent=1))

    results, record = train_and_predict("insample", frames, frames, args, device, args.epochs)
    (args.out / "trained_insample.json").write_text(json.dumps(results))
    report["runs"].append(record)
    save()

    # 2-fold OOF: same number of steps in all as the in-sample fit, so about the same time.
    elapsed = time.perf_counter() - t0
    estimate = record["fit_s"] + record["predict_s"] + 20
    epochs = args.epochs
    if elapsed + estimate > args.budget_s:
        epochs = int(args.epochs * (args.budget_s - elapsed - 20) / estimate)
        print(f"OOF: {elapsed:.0f}s used, shortening to {epochs} epochs per fold", flush=True)
    if epochs >= 5 or args.smoke:
        ids = np.array(sorted(frames.images.image_id))
        order = np.random.default_rng(args.seed).permutation(len(ids))
        halves = [set(ids[order[: len(ids) // 2]].tolist()), set(ids[order[len(ids) // 2 :]].tolist())]
        oof: list[dict] = []
        for fold, held in enumerate(halves):
            train = subset(frames, set(ids.tolist()) - held)
            part, rec = train_and_predict(
                f"oof_fold{fold}", train, subset(frames, held), args, device, max(epochs, 1)
            )
            oof.extend(part)
            report["runs"].append(rec)
            save()
        (args.out / "trained_oof.json").write_text(json.dumps(oof))
    else:
        print("OOF skipped: no time left", flush=True)
    save()
    print(f"total {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
