"""Import benchmark: the image-metric pass against a plain full decode of the same 8 MP JPEGs.

Makes N 3264×2448 JPEGs (8 MP, like TACO) by upscaling the real fruits_nuts photos into a temp
dir, then measures with the same number of spawn worker processes, as images/s from the first
completed image to the last (pool start-up, a one-off, is excluded from both alike):

(a) decode-only: Pillow open + full decode to RGB, the way a naive tool reads every image;
(b) metrics.pipeline.run_image_pass: sha1, reduced decode, hashes and every image metric.

Run:  .venv/bin/python bench/import_bench.py [--images 24] [--workers 2] [--repeats 3]
Target: (b) ≥ 0.8 × the images/s of (a).
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from _common import counts_parser

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FRUITS = REPO / ".." / "shared" / "data" / "fruits_nuts" / "images"
SIZE = (3264, 2448)


def make_images(folder: Path, count: int) -> list[dict]:
    from PIL import Image

    sources = sorted(FRUITS.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"real data not found: {FRUITS.resolve()}")
    records = []
    for k in range(count):
        with Image.open(sources[k % len(sources)]) as photo:
            big = photo.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
        path = folder / f"big_{k:03d}.jpg"
        big.save(path, quality=90)
        records.append({"path": str(path), "width": SIZE[0], "height": SIZE[1]})
    return records


def decode_full(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return rgb.size


def steady_rate(completion_times: list[float]) -> float:
    """Images/s from the first completed image to the last: pool start-up (a one-off) excluded alike."""
    times = sorted(completion_times)
    return (len(times) - 1) / (times[-1] - times[0])


def rate_decode_only(paths: list[str], workers: int) -> float:
    done = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(decode_full, paths, chunksize=1):
            done.append(time.perf_counter())
    return steady_rate(done)


def rate_image_pass(records: list[dict], workers: int) -> float:
    from metrics.pipeline import run_image_pass

    done = []
    for _, result in run_image_pass(records, workers=workers, chunk_size=1):
        assert result["status"] == "ok", result["error"]
        done.append(time.perf_counter())
    return steady_rate(done)


def main() -> None:
    args = counts_parser(__doc__.splitlines()[0], images=24, workers=2, repeats=3).parse_args()
    with tempfile.TemporaryDirectory(prefix="cocolens_bench_") as tmp:
        records = make_images(Path(tmp), args.images)
        paths = [r["path"] for r in records]
        n = len(records)
        decode_rates, pass_rates = [], []
        for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
            decode_rates.append(rate_decode_only(paths, args.workers))
            pass_rates.append(rate_image_pass(records, args.workers))
        decode_rate, pass_rate = max(decode_rates), max(pass_rates)
        print(
            f"images: {n} JPEG {SIZE[0]}x{SIZE[1]} ({SIZE[0] * SIZE[1] / 1e6:.1f} MP), workers: {args.workers}"
        )
        print(f"(a) decode-only (full decode):  {decode_rate:6.1f} images/s   runs: {_fmt(decode_rates)}")
        print(f"(b) run_image_pass (metrics):   {pass_rate:6.1f} images/s   runs: {_fmt(pass_rates)}")
        print(f"ratio (b)/(a): {pass_rate / decode_rate:.2f}  (target ≥ 0.80)")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
