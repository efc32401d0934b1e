"""Crop embeddings per second on this machine: PyTorch eager vs ONNX Runtime, side by side.

Times ``metrics.embeddings.embed_objects`` end to end (decode each blood_cells image once, crop with
10% context, resize to 128 px, normalise, MobileNetV2, L2-normalise) on the first N objects of the
real blood_cells set, alternating the two runtimes (``COCOLENS_EMBED_RUNTIME=torch`` / ``onnx``) so
that load from other processes hits both alike; prints wall crops/s, CPU seconds (user + system of
this process) and the largest difference between the two runtimes' vectors.

Run:  .venv/bin/python bench/crop_runtime_bench.py [--crops 1024] [--repeats 3] [--batch 32]
Target (issue 17): ≥ 100 crops/s on the 2-vCPU AMD EPYC (AVX2) workspace.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import counts_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / ".." / "shared" / "data" / "blood_cells"


def blood_cell_crops(limit: int) -> tuple[list[str], np.ndarray]:
    coco = json.loads((DATA / "annotations.json").read_text())
    files = {im["id"]: str(DATA / "images" / im["file_name"]) for im in coco["images"]}
    objects = sorted(coco["annotations"], key=lambda o: (o["image_id"], o["id"]))[:limit]
    return [files[o["image_id"]] for o in objects], np.array([o["bbox"] for o in objects], dtype=float)


def run(runtime: str, paths: list[str], boxes: np.ndarray, batch: int) -> tuple[dict, np.ndarray]:
    from metrics import embeddings

    os.environ["COCOLENS_EMBED_RUNTIME"] = runtime
    embeddings.get_embedder.cache_clear()
    embedder = embeddings.get_embedder("mobilenet_v2", "cpu")
    assert (embedder.runner is not None) == (runtime == "onnx"), f"{runtime} runtime not available"
    embeddings.embed_objects(paths[:batch], boxes[:batch], device="cpu", batch_size=batch)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    vectors = embeddings.embed_objects(paths, boxes, device="cpu", batch_size=batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"runtime": runtime, "crops_per_s": len(boxes) / wall, "wall": wall, "cpu": cpu}, vectors


def main() -> None:
    args = counts_parser(__doc__.splitlines()[0], crops=1024, repeats=3, batch=32).parse_args()
    if not (DATA / "annotations.json").is_file():
        raise SystemExit(f"real data not found: {DATA.resolve()}")
    paths, boxes = blood_cell_crops(args.crops)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cores: {os.cpu_count()}")
    rows: dict[str, list[dict]] = {"torch": [], "onnx": []}
    vectors: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        for runtime in ("torch", "onnx") if repeat % 2 == 0 else ("onnx", "torch"):
            row, vectors[runtime] = run(runtime, paths, boxes, args.batch)
            rows[runtime].append(row)
            print(
                f"{runtime:6s} run {repeat + 1}: {row['crops_per_s']:6.1f} crops/s   wall {row['wall']:6.2f} s"
                f"   CPU {row['cpu']:6.2f} s   load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    difference = float(np.abs(vectors["torch"] - vectors["onnx"]).max())
    cosine = float(np.einsum("ij,ij->i", vectors["torch"], vectors["onnx"]).min())
    for runtime, runs in rows.items():
        rate = statistics.median(r["crops_per_s"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"{runtime:6s} median {rate:6.1f} crops/s, CPU {cpu:.2f} s for {len(boxes)} crops of 128 px")
    print(f"max |torch − onnx| = {difference:.2e}, min cosine = {cosine:.6f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
