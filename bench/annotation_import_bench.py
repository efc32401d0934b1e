"""Annotation-only import: 20,000 images × 10 objects with no image files, whole process, vs FiftyOne.

Writes the COCO file of ``bench/scale_bench.py`` (64×48 frames, boxes with a 4-point polygon each;
``--boxes-only`` drops the polygons) into an empty images folder and times
``python cli.py import coco ... --quiet`` from a cold start: wall seconds and the CPU seconds
(user, system) of the process, with the load average, ``--repeats`` times. With ``--baseline DIR``
(a checkout of older cocolens code, e.g. ``git archive 846cc10 | tar -x -C DIR``) the old and the
new code run alternately on the same file, so load from other processes hits both alike.

The yardstick is FiftyOne's published figure for the same 200k boxes on this machine kind, measured
for issue 17 (FiftyOne is not installed here): ~74 s (23 s building samples + 51 s ``add_samples``).

Run:  .venv/bin/python bench/annotation_import_bench.py [--images 20000] [--repeats 3] [--boxes-only]
Target (issue 17): ≤ 7 s whole process (10× FiftyOne).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _common import counts_parser, import_coco_args, run_timed

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

FIFTYONE_SECONDS = 74.0  # issue 17: 23 s sample building + 51 s add_samples, 200k boxes, 2-vCPU EPYC


def make_set(folder: Path, images: int, objects: int, boxes_only: bool) -> Path:
    from scale_bench import write_coco

    ann = folder / "annotations.json"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    if not ann.is_file():
        write_coco(ann, images, objects)
        if boxes_only:
            coco = json.loads(ann.read_text())
            for record in coco["annotations"]:
                record.pop("segmentation")
            ann.write_text(json.dumps(coco))
    return ann


def timed_import(code: Path, folder: Path, ann: Path, project: Path) -> dict:
    shutil.rmtree(project, ignore_errors=True)
    args = import_coco_args(folder / "images", ann, project, "d")
    done, times = run_timed([sys.executable, str(code / "cli.py"), *args, "--quiet"], code)
    if done.returncode:
        raise SystemExit(f"import failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {**times, "objects": summary["objects"], "load": os.getloadavg()[0]}


def main() -> None:
    parser = counts_parser(__doc__.splitlines()[0], images=20_000, objects=10, repeats=3)
    parser.add_argument(
        "--boxes-only", action="store_true", help="no polygons: boxes only, like FiftyOne's run"
    )
    parser.add_argument("--baseline", help="a checkout of older code to run alternately")
    parser.add_argument("--keep", help="folder for the generated file (reused)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cocolens-ann-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        folder = base / f"ann_{args.images}x{args.objects}{'_boxes' if args.boxes_only else ''}"
        ann = make_set(folder, args.images, args.objects, args.boxes_only)
        codes = {"new": REPO}
        if args.baseline:
            codes["old"] = Path(args.baseline).resolve()
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        runs: dict[str, list[dict]] = {name: [] for name in codes}
        for repeat in range(args.repeats):
            order = list(codes) if repeat % 2 == 0 else list(reversed(codes))
            for name in order:
                row = timed_import(codes[name], folder, ann, Path(tmp) / f"project_{name}")
                runs[name].append(row)
                print(
                    f"{name} run {repeat + 1}: wall {row['wall']:6.2f} s   user {row['user']:6.2f} s   "
                    f"sys {row['sys']:5.2f} s   load {row['load']:.2f}",
                    flush=True,
                )
        kind = "boxes only" if args.boxes_only else "boxes + 4-point polygons"
        objects = runs["new"][0]["objects"]
        print(f"{args.images} images × {args.objects} objects ({objects} objects, {kind}), no image files")
        for name, rows in runs.items():
            wall = statistics.median(r["wall"] for r in rows)
            cpu = statistics.median(r["user"] + r["sys"] for r in rows)
            print(
                f"{name}: median wall {wall:.2f} s, median CPU {cpu:.2f} s; "
                f"FiftyOne {FIFTYONE_SECONDS:.0f} s / wall = {FIFTYONE_SECONDS / wall:.1f}× (target ≤ 7 s, ≥ 10×)"
            )
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
