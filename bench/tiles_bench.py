"""Per-size AP with and without tiles on a set where tiles matter: fruits_nuts objects pasted small into
large canvases (the TACO situation: an 8 MP photo, most objects under 1 % of it).

Makes the set (objects cut out along their polygons, 80 % scaled to 14-40 px, 20 % to 60-200 px, on
textured grey canvases), then trains the light model twice with models.train.fit on CPU:
  - untiled: whole canvases resized to --side, predicted the same way;
  - tiled: --side crops of the originals (tile_size = --side), predicted with sliding tiles + the full
    canvas (models.tiles.predict_tiled);
and prints COCO AP / APs / APm / APl (faster-coco-eval, original frame) on held-out canvases, also for
the tiled model predicted without tiles.

Usage: .venv/bin/python bench/tiles_bench.py [--epochs 8 --side 384 --canvas 1536 --work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

SOURCE = REPO.parent / "shared" / "data" / "fruits_nuts"


def make_set(out: Path, canvases: int, width: int, height: int, seed: int) -> Path:
    """COCO json + PNG canvases with pasted objects; returns the json path."""
    coco = json.loads((SOURCE / "annotations.json").read_text())
    rng = np.random.default_rng(seed)
    sources = []  # (RGBA cut-out, polygons relative to its box, category)
    for ann in coco["annotations"]:
        if not ann.get("segmentation") or not isinstance(ann["segmentation"], list):
            continue
        image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        rgb = Image.open(SOURCE / "images" / image["file_name"]).convert("RGB")
        x, y, w, h = (int(round(v)) for v in ann["bbox"])
        if w < 4 or h < 4:
            continue
        mask = Image.new("L", rgb.size, 0)
        for poly in ann["segmentation"]:
            ImageDraw.Draw(mask).polygon(list(map(tuple, np.asarray(poly).reshape(-1, 2))), fill=255)
        cut = rgb.crop((x, y, x + w, y + h))
        cut.putalpha(mask.crop((x, y, x + w, y + h)))
        polys = [(np.asarray(p).reshape(-1, 2) - (x, y)).tolist() for p in ann["segmentation"]]
        sources.append((cut, polys, ann["category_id"]))
    images, annotations = [], []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for index in range(canvases):
        noise = rng.normal(120, 18, (height // 8, width // 8, 3)).clip(0, 255).astype(np.uint8)
        canvas = (
            Image.fromarray(noise).resize((width, height), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        )
        taken: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(10, 18))):
            cut, polys, category = sources[int(rng.integers(len(sources)))]
            side = rng.uniform(14, 40) if rng.random() < 0.8 else rng.uniform(60, 200)
            scale = side / max(cut.size)
            size = (max(2, round(cut.width * scale)), max(2, round(cut.height * scale)))
            for _attempt in range(30):
                x, y = int(rng.integers(0, width - size[0])), int(rng.integers(0, height - size[1]))
                box = (x - 4, y - 4, x + size[0] + 4, y + size[1] + 4)
                if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in taken):
                    break
            else:
                continue
            taken.append(box)
            small = cut.resize(size, Image.LANCZOS)
            canvas.paste(small, (x, y), small)
            sx, sy = size[0] / cut.width, size[1] / cut.height
            segmentation = [(np.asarray(p) * (sx, sy) + (x, y)).ravel().round(2).tolist() for p in polys]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": category,
                    "bbox": [x, y, size[0], size[1]],
                    "area": float((np.asarray(small.getchannel("A")) > 127).sum()),
                    "iscrowd": 0,
                    "segmentation": segmentation,
                }
            )
        name = f"canvas_{index:03d}.png"
        canvas.save(out / "images" / name)
        images.append({"id": index + 1, "file_name": name, "width": width, "height": height})
    path = out / "annotations.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": coco["categories"]})
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/cocolens_tiles_bench"))
    parser.add_argument("--canvases", type=int, default=28)
    parser.add_argument("--val", type=int, default=8)
    parser.add_argument("--canvas", type=int, default=1536, help="canvas width (height = 3/4 of it)")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from models.config import load_config
    from models.data import frames_to_coco
    from models.folds import subset
    from models.predict import load_checkpoint, predict
    from models.tiles import predict_tiled
    from models.train import coco_stats, fit
    from tests.models.coco_frames import frames_from_coco

    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    annotations = make_set(args.work / "set", args.canvases, args.canvas, args.canvas * 3 // 4, args.seed)
    frames = frames_from_coco(annotations, args.work / "set" / "images")
    ids = sorted(frames.images.image_id)
    train, val = subset(frames, set(ids[: -args.val])), subset(frames, set(ids[-args.val :]))
    gt = frames_to_coco(val)
    areas = [a["area"] for a in gt["annotations"]]
    report: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "val_objects": len(areas),
        "val_small_medium_large": [
            sum(a < 32**2 for a in areas),
            sum(32**2 <= a < 96**2 for a in areas),
            sum(a >= 96**2 for a in areas),
        ],
        "set_s": round(time.perf_counter() - started, 1),
        "runs": {},
    }
    print(json.dumps(report), flush=True)
    base = dict(
        model="maskrcnn_mobilenet_v2_fpn",
        pretrained_backbone=True,
        max_side=args.side,
        epochs=args.epochs,
        eval_every=args.epochs,
        early_stop_patience=10_000,
        batch_size=args.batch,
        lr=args.lr,
        device="cpu",
        seed=args.seed,
        log_every=1000,
    )
    for name, tile in (("untiled", 0), ("tiled", args.side)):
        config = load_config(**base, tile_size=tile)
        t0 = time.perf_counter()
        summary = fit(config, train, val, args.work / name)
        fit_s = time.perf_counter() - t0
        loaded = load_checkpoint(summary["checkpoint"])
        predictions = {
            "untiled predict": lambda m=loaded.model: predict(m, val.images, "cpu", 0.05, args.side)
        }
        if tile:
            predictions["tiled predict"] = lambda m=loaded.model, t=tile: predict_tiled(
                m, val.images, "cpu", t, 0.2, 0.05, args.side
            )
        for how, run in predictions.items():
            t0 = time.perf_counter()
            results = run()
            predict_s = time.perf_counter() - t0
            boxes = [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results]
            stats = coco_stats(gt, boxes, "bbox")
            key = f"{name} model, {how}"
            report["runs"][key] = {
                "fit_s": round(fit_s, 1),
                "predict_s": round(predict_s, 1),
                "predictions": len(results),
                **{k: round(stats[k], 3) for k in ("AP", "AP50", "APs", "APm", "APl", "ARs")},
                "load_avg": round(os.getloadavg()[0], 1),
            }
            print(json.dumps({key: report["runs"][key]}), flush=True)
    report["total_s"] = round(time.perf_counter() - started, 1)
    (args.work / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
