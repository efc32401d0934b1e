"""Seconds per training step of the Mask R-CNN builders at a given size and batch (CPU or CUDA).

Usage: python bench/train_step_bench.py [--device cpu] [--side 512] [--batch 2] [--steps 3]
Images are real fruits_nuts photos (../shared/data or --data) resized to --side, so RoI counts
and mask targets are realistic; timing starts after warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from models.data import CocoDetectionDataset, Frames, collate_fn  # noqa: E402
from tests.models.coco_frames import frames_from_coco  # noqa: E402

MODELS = ("maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v2_fpn")


def load_frames(data_dir: Path) -> Frames:
    return frames_from_coco(data_dir / "annotations.json", data_dir / "images")


def time_steps(
    model_name: str,
    frames: Frames,
    device: torch.device,
    side: int,
    batch: int,
    steps: int,
    warmup: int,
    amp: bool,
    pretrained: bool = True,
) -> dict:
    """Mean and median seconds per optimiser step (models.train.train_step: forward + backward + Adam),
    after warm-up."""
    from models.detectors import build_model
    from models.train import train_step

    dataset = CocoDetectionDataset(*frames, max_side=side, train=True)
    samples = [dataset[i % len(dataset)] for i in range(batch)]
    images, targets = collate_fn(samples)
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
    torch.manual_seed(0)
    model = build_model(model_name, dataset.num_classes, pretrained, side).to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(model, optimizer, images, targets, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "model": model_name,
        "device": str(device),
        "side": side,
        "batch": batch,
        "amp": use_amp,
        "steps": steps,
        "s_per_step_mean": sum(times) / len(times),
        "s_per_step_median": times[len(times) // 2],
        "backbone_pretrained": bool(model.backbone_pretrained),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data" / "fruits_nuts")
    args = parser.parse_args()
    frames = load_frames(args.data)
    print(
        json.dumps(
            {
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "load_avg": os.getloadavg(),
                "torch": torch.__version__,
            }
        )
    )
    for name in MODELS:
        result = time_steps(
            name, frames, torch.device(args.device), args.side, args.batch, args.steps, args.warmup, True
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
