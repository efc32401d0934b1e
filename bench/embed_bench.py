"""Benchmark: object-crop embedding throughput and kNN time at a million vectors.

    python bench/embed_bench.py                       # crops/s at 96/128/224 px on 2 cores, kNN on 1M
    python bench/embed_bench.py --skip-knn --device cuda
    python bench/embed_bench.py --knn-rows 200000 --knn-data clustered --json out.json

Crops come from the real blood_cells set (../shared/data) when present, else from synthetic images;
they are timed end to end (decode each image once, crop, resize, normalise, MobileNetV2, L2-norm)
after one warm-up batch. kNN times ``metrics.knn.knn`` (approximate path above 50k rows) and
estimates its recall against exact search on a sample of queries.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics.embeddings import embed_objects, get_embedder, torch_threads  # noqa: E402
from metrics.knn import knn  # noqa: E402


def blood_cell_objects(data: Path, limit: int) -> tuple[list[str], np.ndarray] | None:
    annotations = data / "blood_cells" / "annotations.json"
    if not annotations.is_file():
        return None
    coco = json.loads(annotations.read_text())
    files = {im["id"]: str(data / "blood_cells" / "images" / im["file_name"]) for im in coco["images"]}
    objects = coco["annotations"][:limit]
    return [files[o["image_id"]] for o in objects], np.array([o["bbox"] for o in objects], dtype=float)


def synthetic_objects(limit: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """416×416 noise images with ~24 boxes of 40–110 px each (the blood_cells geometry)."""
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    while len(boxes) < limit:
        image = rng.integers(0, 255, (416, 416, 3), dtype=np.uint8)
        for _ in range(min(24, limit - len(boxes))):
            w, h = rng.uniform(40, 110, 2)
            boxes.append([rng.uniform(0, 416 - w), rng.uniform(0, 416 - h), w, h])
            images.append(image)
    return images, np.array(boxes)


def bench_crops(args: argparse.Namespace) -> list[dict]:
    found = blood_cell_objects(Path(args.data), args.crops)
    source = "blood_cells" if found else "synthetic 416 px"
    paths, boxes = found if found else synthetic_objects(args.crops)
    embedder = get_embedder(args.backbone, args.device)
    results = []
    for size in args.sizes:
        embed_objects(paths[: args.batch], boxes[: args.batch], device=args.device, size=size)  # warm-up
        start = time.perf_counter()
        out = embed_objects(paths, boxes, device=args.device, size=size, batch_size=args.batch)
        seconds = time.perf_counter() - start
        row = {
            "crop_size": size,
            "crops": len(boxes),
            "seconds": round(seconds, 2),
            "crops_per_s": round(len(boxes) / seconds, 1),
            "dim": out.shape[1],
            "source": source,
            "device": embedder.device,
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def make_vectors(rows: int, dim: int, kind: str, seed: int = 0) -> np.ndarray:
    """Unit rows, like stored embeddings (normalised in place, chunk by chunk: no 5 GB temporary)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    if kind == "clustered":
        x *= 0.5
        centres = rng.standard_normal((1000, dim), dtype=np.float32)
        labels = rng.integers(0, len(centres), rows)
    for start in range(0, rows, 65536):
        chunk = x[start : start + 65536]
        if kind == "clustered":
            chunk += centres[labels[start : start + 65536]]
        chunk /= np.sqrt(np.einsum("ij,ij->i", chunk, chunk))[:, None]
    return x


def bench_knn(args: argparse.Namespace) -> dict:
    x = make_vectors(args.knn_rows, args.dim, args.knn_data)
    start = time.perf_counter()
    idx, _ = knn(x, k=args.k)
    seconds = time.perf_counter() - start
    rng = np.random.default_rng(1)
    queries = rng.choice(len(x), size=min(200, len(x)), replace=False)
    sims = x[queries] @ x.T
    sims[np.arange(len(queries)), queries] = -np.inf
    exact = np.argpartition(-sims, args.k - 1, axis=1)[:, : args.k]
    recall = float(np.mean([len(set(idx[q]) & set(e)) / args.k for q, e in zip(queries, exact, strict=True)]))
    row = {
        "rows": len(x),
        "dim": args.dim,
        "k": args.k,
        "data": args.knn_data,
        "seconds": round(seconds, 1),
        "recall_at_k": round(recall, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    parser.add_argument("--crops", type=int, default=1024)
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[96, 128, 224])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch / faiss threads (CPU)")
    parser.add_argument("--knn-rows", type=int, default=1_000_000)
    parser.add_argument("--knn-data", choices=["random", "clustered"], default="random")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--skip-crops", action="store_true")
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument("--json", help="write all results here")
    args = parser.parse_args()

    import logging

    import metrics.embeddings as embeddings

    logging.basicConfig(level=logging.INFO, format="%(message)s")

    embeddings.cpu_cores = lambda: args.threads  # the bench pins the core count it reports
    report = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}"}
    with torch_threads(args.threads):
        if not args.skip_crops:
            report["crops"] = bench_crops(args)
        if not args.skip_knn:
            report["knn"] = bench_knn(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
