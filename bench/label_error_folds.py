"""Label-error AUROC per kind with in-sample vs out-of-fold predictions of a model cocolens trains, on CPU.

The product path end to end: plant errors in blood_cells with the yardstick's inject_errors.py (the
same seed gives the same file bench/label_error_bench.py makes), import the corrupted file, then
  - `cocolens train --train bc --val bc_val` then `cocolens predict --dataset bc` (in-sample: the model
    predicts the images it learnt from)
  - `cocolens train --train bc --val bc_val --folds K` (each image predicted by the model that never
    saw it)
(bc_val: the first 8 images, only there because a training needs a val dataset: one evaluation at
the last epoch, which is the checkpoint either way)
and score each model's predictions with bench/label_error_bench.py --predictions (label_issue per
label, missing_label per image, AUROC per planted kind with label_error_auc.py).

Usage: .venv/bin/python bench/label_error_folds.py [--epochs 4 --side 320 --folds 3 --work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YARDSTICK = SHARED / "tools" / "label_errors"


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="blood_cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--val-images", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cocolens_folds_bench"))
    args = parser.parse_args()
    source = SHARED / "data" / args.dataset
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    corrupted, truth = work / "corrupted.json", work / "truth.json"
    run(str(YARDSTICK / "inject_errors.py"), "--coco", str(source / "annotations.json"), "--out",
        str(corrupted), "--truth", str(truth), "--seed", str(args.seed))  # fmt: skip
    project = work / "project"
    if not (project / "datasets" / "bc").is_dir():
        run(str(ROOT / "cli.py"), "import", "coco", "--images", str(source / "images"), "--annotations",
            str(corrupted), "--project", str(project), "--dataset", "bc", "--quiet")  # fmt: skip
    # a small val dataset (the first --val-images images): with eval_every = epochs the checkpoint is
    # the last epoch anyway, so validation only has to exist; it keeps CPU time for training
    small = json.loads(corrupted.read_text())
    small["images"] = sorted(small["images"], key=lambda i: i["id"])[: args.val_images]
    kept = {i["id"] for i in small["images"]}
    small["annotations"] = [a for a in small["annotations"] if a["image_id"] in kept]
    (work / "val_small.json").write_text(json.dumps(small))
    if not (project / "datasets" / "bc_val").is_dir():
        run(str(ROOT / "cli.py"), "import", "coco", "--images", str(source / "images"), "--annotations",
            str(work / "val_small.json"), "--project", str(project), "--dataset", "bc_val", "--quiet")  # fmt: skip
    config = work / "cpu.toml"
    config.write_text(
        "\n".join(
            [
                'model = "maskrcnn_mobilenet_v2_fpn"',
                "pretrained_backbone = true",  # the offline ImageNet MobileNetV2 file
                f"max_side = {args.side}",
                f"epochs = {args.epochs}",
                f"eval_every = {args.epochs}",  # one evaluation, at the end
                f"batch_size = {args.batch}",
                f"lr = {args.lr}",
                'device = "cpu"',
                f"seed = {args.seed}",
                "log_every = 5",
            ]
        )
        + "\n"
    )
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    base = ["train", "--project", str(project), "--train", "bc", "--val", "bc_val", "--config", str(config)]
    for name, extra in (("insample", []), ("oof", ["--folds", str(args.folds)])):
        started = time.perf_counter()
        summary = json.loads(run(str(ROOT / "cli.py"), *base, "--name", f"bc_{name}", *extra))
        predictions = project / "jobs" / summary["job"] / "predictions.json"
        if name == "insample":  # the in-sample model predicts the images it learnt from
            checkpoint = project / "jobs" / summary["job"] / "best.pt"
            done = json.loads(run(str(ROOT / "cli.py"), "predict", "--project", str(project), "--checkpoint",
                                  str(checkpoint), "--dataset", "bc", "--model", "bc_insample_all"))  # fmt: skip
            predictions = Path(done["results_file"])
        train_s = time.perf_counter() - started
        scored = json.loads(
            run(
                str(ROOT / "bench" / "label_error_bench.py"),
                "--dataset",
                args.dataset,
                "--seed",
                str(args.seed),
                "--predictions",
                str(predictions),
                "--model",
                f"trained_{name}",
                "--work",
                str(work / "scoring"),
            )  # fmt: skip
        )
        report["runs"][name] = {
            "model": summary["model"],
            "train_and_predict_s": round(train_s, 1),
            "best_val_bbox_AP": ((summary.get("best_val") or {}).get("bbox") or {}).get("AP"),
            "predictions": len(json.loads(predictions.read_text())),
            "load_avg": os.getloadavg()[0],
            "auroc": scored["auroc"],
        }
        print(json.dumps({name: report["runs"][name]}), flush=True)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
