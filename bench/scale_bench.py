"""Scale benchmark: images/s and peak memory of ``cocolens import coco`` at 10k / 100k images.

Generates N small JPEGs (64×48 noise, so perceptual hashes differ) and a COCO file with
``--objects`` box+polygon annotations per image (100k images → 1M objects, a ~150 MB JSON file),
then runs the real CLI import in a subprocess with ``--engine local`` and ``--engine ray``
(``--workers`` CPUs each) and samples the resident memory of the whole process tree (importer,
pool workers, Ray's raylet/GCS/actors) every 0.1 s from /proc. Reports wall time, images/s and
objects/s of the whole import (JSON validation, image pass, tables, label metrics, duplicates,
commit), the CPU seconds of the importer and the children it reaped (less sensitive than wall time
to other load on the machine; Ray's own daemons are not included) and the peak RSS of the
importer process alone and of the tree.

``--reader streaming`` imports with the one-process streaming COCO reader instead of the parallel
one (issue 16 item 4), for before/after figures; ``--reader-only`` times ``read_coco`` alone on the
generated file with both readers (no images are written, nothing is imported).

Run:  .venv/bin/python bench/scale_bench.py --images 10000 [--engines local ray] [--keep DIR]
      .venv/bin/python bench/scale_bench.py --images 1000000 --engines local --missing-images [--keep DIR]
      .venv/bin/python bench/scale_bench.py --images 100000 --reader-only [--keep DIR]
Prints one JSON line per run; docs/BENCHMARKS.md ("Scale") records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_images(folder: Path, count: int, seed: int = 0) -> None:
    """64×48 JPEGs of coarse random blocks (distinct pHashes, ~1.5 kB each)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image_id in range(count):
        path = folder / f"{image_id // 1000:04d}" / f"img_{image_id:07d}.jpg"
        if path.is_file():
            continue
        path.parent.mkdir(exist_ok=True)
        blocks = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
        pixels = cv2.resize(blocks, (64, 48), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])


def write_coco(path: Path, count: int, objects_per_image: int, seed: int = 0) -> int:
    """Write the COCO file piece by piece (the generator itself stays small); return #objects."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ann_id = 0
    with open(path, "w") as handle:
        handle.write('{"info": {"description": "scale bench"}, "images": [')
        for image_id in range(count):
            name = f"{image_id // 1000:04d}/img_{image_id:07d}.jpg"
            sep = "," if image_id else ""
            handle.write(f'{sep}{{"id":{image_id},"file_name":"{name}","width":64,"height":48}}')
        handle.write('], "annotations": [')
        for image_id in range(count):
            xs = rng.integers(0, 48, size=objects_per_image)
            ys = rng.integers(0, 32, size=objects_per_image)
            ws = rng.integers(2, 16, size=objects_per_image)
            hs = rng.integers(2, 16, size=objects_per_image)
            cats = rng.integers(1, 11, size=objects_per_image)
            parts = []
            for x, y, w, h, c in zip(xs, ys, ws, hs, cats, strict=True):
                poly = [x, y, x + w, y, x + w, y + h, x, y + h]
                parts.append(
                    f'{{"id":{ann_id},"image_id":{image_id},"category_id":{c},'
                    f'"bbox":[{x},{y},{w},{h}],"area":{w * h},"iscrowd":0,'
                    f'"segmentation":[[{",".join(str(v) for v in poly)}]]}}'
                )
                ann_id += 1
            handle.write(("," if image_id else "") + ",".join(parts))
        cats_json = ",".join(f'{{"id":{c},"name":"class_{c}","supercategory":"thing"}}' for c in range(1, 11))
        handle.write(f'], "categories": [{cats_json}]}}')
    return ann_id


def _tree_rss(root: int) -> tuple[int, int]:
    """(RSS of root, RSS summed over root and all its descendants), bytes, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return rss.get(root, 0), total


# Runs the CLI (or the reader alone) with the parallel COCO reader switched off when asked.
_LAUNCHER = """
import sys
sys.path.insert(0, {repo!r})
from store import coco_reader
if {streaming!r}:
    coco_reader.PARALLEL_ABOVE_BYTES = 1 << 62
if sys.argv[1] == "read":
    tables = coco_reader.read_coco(sys.argv[2], "bench", workers=int(sys.argv[3]))
    print(len(tables.objects))
else:
    import cli
    sys.exit(cli.main(sys.argv[1:]))
"""


def _launcher(reader: str) -> list[str]:
    return [sys.executable, "-c", _LAUNCHER.format(repo=str(REPO), streaming=reader == "streaming")]


def _measured(command: list[str]) -> dict:
    """Run ``command``: wall and CPU seconds (it and the children it reaped), peak RSS of it and of
    its process tree (sampled every 0.1 s), its stdout."""
    peak = {"main": 0, "tree": 0}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            main, tree = _tree_rss(process.pid)
            peak["main"] = max(peak["main"], main)
            peak["tree"] = max(peak["tree"], tree)
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the process and the children it reaped
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if process.returncode != 0:
        raise SystemExit(f"{command[-1]} failed ({process.returncode}): {err[-2000:]}")
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_rss_importer_mb": round(peak["main"] / 2**20),
        "peak_rss_tree_mb": round(peak["tree"] / 2**20),
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "stdout": out,
    }


def run_reader(ann: Path, reader: str, workers: int) -> dict:
    """``read_coco`` alone on the file, with the parallel or the streaming reader."""
    run = _measured([*_launcher(reader), "read", str(ann), str(workers)])
    objects = int(run.pop("stdout").strip().splitlines()[-1])
    return {"reader": reader, "workers": workers, "objects": objects, **run}


def run_import(images: Path, ann: Path, project: Path, engine: str, workers: int, reader: str) -> dict:
    command = [
        *_launcher(reader),
        "import",
        "coco",
        "--images",
        str(images),
        "--annotations",
        str(ann),
        "--project",
        str(project),
        "--dataset",
        f"bench_{engine}",
        "--workers",
        str(workers),
        "--engine",
        engine,
        "--quiet",
    ]
    run = _measured(command)
    summary = json.loads(run.pop("stdout").strip().splitlines()[-1])
    seconds = run["seconds"]
    meta = json.loads((project / "datasets" / f"bench_{engine}" / "dataset.json").read_text())
    image_pass = meta.get("image_pass_seconds") or float("nan")
    return {
        "engine": engine,
        "reader": reader,
        "workers": workers,
        "images": summary["images"],
        "objects": summary["objects"],
        **run,
        "images_per_s": round(summary["images"] / seconds, 1),
        "objects_per_s": round(summary["objects"] / seconds, 1),
        "image_pass_seconds": image_pass,
        "image_pass_images_per_s": round(summary["images"] / image_pass, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=10, help="annotations per image")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--keep", help="folder for the generated data (reused when run again)")
    parser.add_argument("--reader", default="parallel", choices=["parallel", "streaming"])
    parser.add_argument("--reader-only", action="store_true", help="time read_coco alone, both readers")
    parser.add_argument(
        "--missing-images",
        action="store_true",
        help="write no JPEGs: every image is missing (annotation-only import, as for Open Images at 1M)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cocolens-scale-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        data = base / f"data_{args.images}"
        started = time.perf_counter()
        data.mkdir(parents=True, exist_ok=True)
        if args.missing_images:
            (data / "images").mkdir(exist_ok=True)
        elif not args.reader_only:
            make_images(data / "images", args.images)
        ann = data / "annotations.json"
        if not ann.is_file():
            write_coco(ann, args.images, args.objects)
        print(
            json.dumps(
                {
                    "generated_images": args.images,
                    "annotations_mb": round(ann.stat().st_size / 1e6, 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )
        if args.reader_only:
            for reader in ("streaming", "parallel"):
                print(json.dumps(run_reader(ann, reader, args.workers)), flush=True)
            return
        for engine in args.engines:
            project = base / f"project_{args.images}_{engine}_{args.reader}"
            run = run_import(data / "images", ann, project, engine, args.workers, args.reader)
            print(json.dumps(run), flush=True)


if __name__ == "__main__":
    main()
