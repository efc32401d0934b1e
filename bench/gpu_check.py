"""One prepared CUDA check of the training stack: step times, a short fit() per model, predict on val.

Run on the device machine from the repo root:
    TORCH_HOME=.gpu_data/torch python bench/gpu_check.py --data .gpu_data/fruits_nuts --out $OUT
Writes gpu_check.json (figures) to --out. Needs no store: data comes straight from the COCO json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from train_step_bench import MODELS, load_frames, time_steps  # noqa: E402

from models.config import load_config  # noqa: E402
from models.data import Frames, frames_to_coco  # noqa: E402
from models.predict import load_checkpoint, predict  # noqa: E402
from models.train import coco_stats, fit  # noqa: E402


def split(frames: Frames) -> tuple[Frames, Frames]:
    """Every 6th image (by id) is validation: 15 train / 3 val on fruits_nuts."""
    val_ids = set(frames.images.image_id[frames.images.image_id % 6 == 0])

    def part(keep: bool) -> Frames:
        images = frames.images[frames.images.image_id.isin(val_ids) == keep]
        objects = frames.objects[frames.objects.image_id.isin(images.image_id)]
        return Frames(images, objects, frames.categories)

    return part(False), part(True)


def pretrained_offline(name: str) -> bool:
    """Ask for ImageNet weights only where they load without network (no download hangs on the device)."""
    if name == "maskrcnn_resnet50_fpn":
        return (Path(torch.hub.get_dir()) / "checkpoints" / "resnet50-0676ba61.pth").exists()
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fit-epochs", type=int, default=24)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument(
        "--smoke", action="store_true", help="tiny CPU run to check this script before a lease"
    )
    args = parser.parse_args()
    if args.smoke:
        device, side, batches, steps, warmup, workers = torch.device("cpu"), 128, (2,), 1, 0, 0
        args.fit_epochs = 1
    else:
        assert torch.cuda.is_available(), "CUDA is not available"
        device, side, batches, steps, warmup, workers = torch.device("cuda"), 512, (2, 8), 20, 5, 4
    report: dict = {
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "step_times": [],
        "fits": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / "gpu_check.json"

    def save() -> None:
        out_file.write_text(json.dumps(report, indent=1))

    frames = load_frames(args.data)
    for name in args.models:
        for batch in batches:
            result = time_steps(
                name,
                frames,
                device,
                side,
                batch,
                steps=steps,
                warmup=warmup,
                amp=True,
                pretrained=pretrained_offline(name),
            )
            if device.type == "cuda":
                result["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()
            print(json.dumps(result), flush=True)
            report["step_times"].append(result)
            save()

    train, val = split(frames)
    gt = frames_to_coco(val)
    for name in args.models:
        config = load_config(
            model=name,
            pretrained_backbone=pretrained_offline(name),
            batch_size=2,
            epochs=args.fit_epochs,
            workers=workers,
            max_side=side,
            lr=1e-4,
            eval_every=4,
            device=device.type,
            amp=True,
            log_every=20,
            early_stop_patience=100,
        )
        run_dir = args.out / f"fit_{name}"
        started = time.perf_counter()
        steps = []
        summary = fit(
            config,
            train,
            val,
            run_dir,
            lambda p, steps=steps: steps.append(p) if p["event"] == "step" else None,
        )
        fit_s = time.perf_counter() - started
        loaded = load_checkpoint(summary["checkpoint"], device)
        started = time.perf_counter()
        results = predict(loaded.model, val.images, device, score_threshold=0.05, max_side=side, batch_size=4)
        predict_s = time.perf_counter() - started
        record = {
            "model": name,
            "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"],
            "steps": summary["epochs_run"] * len(range(0, len(train.images), 2)),
            "fit_s": fit_s,
            "first_loss": steps[0]["loss"],
            "last_logged_loss": steps[-1]["loss"],
            "val_in_training_frame": summary["best_val"],
            "predict_s": predict_s,
            "predictions": len(results),
            "val_original_frame": {t: coco_stats(gt, results, t) for t in ("bbox", "segm")},
            "history": [
                {
                    "epoch": h["epoch"],
                    "loss": h["losses"]["loss"],
                    "bbox_AP": h.get("val", {}).get("bbox", {}).get("AP"),
                }
                for h in summary["history"]
            ],
        }
        Path(summary["checkpoint"]).unlink()  # 170 MB for R50: not worth bringing back
        print(json.dumps({k: v for k, v in record.items() if k != "history"}), flush=True)
        report["fits"].append(record)
        save()


if __name__ == "__main__":
    main()
