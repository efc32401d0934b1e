"""Label-error pass against the yardstick: AUROC per planted kind, and the pass's time.

Plants errors in a real dataset with ``../shared/tools/label_errors/inject_errors.py``, makes a
detector's output from the clean labels with ``fake_predictions.py``, imports both into a scratch
project (with embeddings), runs ``compute_label_issues`` and scores ``label_issue`` (per label) and
``missing_label`` (per image) with ``label_error_auc.py``; also scores the older single scores
(annotation_quality, label_confidence, model findings) from the same project for comparison.

Usage: .venv/bin/python bench/label_error_bench.py --dataset blood_cells --seed 0 [--work DIR]
       [--predictions FILE --model NAME]   # a real model's output instead of the fake detector
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import import_coco_args

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YARDSTICK = SHARED / "tools" / "label_errors"


def run(*args: str) -> str:
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout


def prepare(
    dataset: str, seed: int, work: Path, predictions: str | None, model: str
) -> tuple[Path, str, Path]:
    source = SHARED / "data" / dataset
    corrupted, truth = work / f"{dataset}.s{seed}.json", work / f"{dataset}.s{seed}.truth.json"
    project, name = work / "project", f"{dataset}_s{seed}"
    if not (project / "datasets" / name / "embeddings" / "meta.json").is_file():
        run(
            str(YARDSTICK / "inject_errors.py"),
            "--coco",
            str(source / "annotations.json"),
            "--out",
            str(corrupted),
            "--truth",
            str(truth),
            "--seed",
            str(seed),
        )
        run(
            str(ROOT / "cli.py"),
            *import_coco_args(source / "images", corrupted, project, name),
            "--quiet",
            "--embeddings",
        )
    if predictions is None:
        predictions = str(work / f"{dataset}.s{seed}.preds.json")
        if not Path(predictions).is_file():
            run(
                str(YARDSTICK / "fake_predictions.py"),
                "--coco",
                str(source / "annotations.json"),
                "--out",
                predictions,
                "--seed",
                str(seed),
            )
    if not (project / "models" / model / "model.json").is_file():
        run(
            str(ROOT / "cli.py"),
            "import",
            "predictions",
            predictions,
            "--project",
            str(project),
            "--model",
            model,
            "--dataset",
            name,
            "--quiet",
        )
    return project, name, truth


def score_files(project: Path, name: str, work: Path) -> tuple[Path, Path]:
    """Yardstick score files (LOW = likely error) from what the pass stored."""
    import pandas as pd

    folder = project / "datasets" / name
    objects = pd.read_parquet(folder / "label_issues" / "objects.parquet")
    rows = objects[["object_id"]].rename(columns={"object_id": "id"})
    rows["label_issue"] = -objects["label_issue"]
    for metric in ("annotation_quality", "label_confidence"):
        path = folder / "metrics" / f"object__{metric}.parquet"
        if path.is_file():
            values = pd.read_parquet(path).set_index("object_id")["value"]
            rows[metric] = values.reindex(objects["object_id"]).fillna(0.5).to_numpy()
    obj_path = work / f"{name}.objects.scores.json"
    obj_path.write_text(json.dumps({"level": "annotation", "scores": rows.to_dict("records")}))
    images = pd.read_parquet(folder / "metrics" / "image__missing_label.parquet")
    img = pd.DataFrame({"image_id": images["image_id"], "missing_label": -images["value"].fillna(0)})
    img_path = work / f"{name}.images.scores.json"
    img_path.write_text(json.dumps({"level": "image", "scores": img.to_dict("records")}))
    return obj_path, img_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="blood_cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/cocolens_label_error_bench")
    parser.add_argument("--predictions", help="COCO results JSON of a real model (default: fake detector)")
    parser.add_argument("--model", default="fake_detector")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from store.label_issues import compute_label_issues
    from store.project import Project

    work = Path(args.work) / f"{args.dataset}_s{args.seed}_{args.model}"
    work.mkdir(parents=True, exist_ok=True)
    project, name, truth = prepare(args.dataset, args.seed, work, args.predictions, args.model)
    timings = []
    for _ in range(2):  # the first pass may embed planted crops; the second finds them stored
        started, cpu = time.perf_counter(), time.process_time()
        with Project(project).writing():
            summary = compute_label_issues(project, name, force=True, seed=args.seed)
        timings.append(
            {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(time.process_time() - cpu, 2)}
        )
    obj_scores, img_scores = score_files(project, name, work)
    table: dict[str, dict[str, float]] = {}
    for path in (obj_scores, img_scores):
        result = json.loads(
            run(str(YARDSTICK / "label_error_auc.py"), "--scores", str(path), "--truth", str(truth))
        )
        for metric, kinds in result["metrics"].items():
            for kind, figures in kinds.items():
                table.setdefault(metric, {})[kind] = figures["auroc"]
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "seed": args.seed,
                "model": args.model,
                "pass": timings,
                "load_avg": os.getloadavg()[0],
                "summary": summary,
                "auroc": table,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
