"""App benchmark: first render of every page and a filter change, on large synthetic projects.

Writes a project straight in the store layout (docs/ARCHITECTURE.md): two datasets splitting
``--images`` images and ``--objects`` objects, 60 categories, every registered image and object
metric with random values inside its declared range, a few duplicate groups. Images are marked
'missing' (no JPEGs needed: the pages must stay fast on metadata alone, as for TACO).

Then the pages' opening summaries are computed into the project's summary cache exactly as
``cocolens import`` / ``cocolens metrics`` do after a commit (store/page_summaries.py ``prewarm``;
any entries already there are removed first so ``prewarm_s`` is the full cost an import adds).

Then, in this one process, each page file that app.py lists and that exists is run through
Streamlit's AppTest (app.py switched to the page, as the server runs /PAGE: sidebar, queries, tables and
charts serialised) after clearing Streamlit's caches, so every figure is a cold first render
(including the first import of what the page needs, e.g. scipy.stats); then each page again with
caches cleared but modules loaded (what every later session of the server pays), with the CPU
seconds of this process beside the wall time (on a shared, loaded machine CPU time is the fairer
figure); then a filter change on the Filter & export page (class + metric range) and a dataset swap on the
Compare page.

Run:  .venv/bin/python bench/app_bench.py --images 100000 --objects 1000000 [--keep DIR]
      .venv/bin/python bench/app_bench.py --images 5000 --objects 41000
Prints one JSON line; docs/BENCHMARKS.md ("App") records the figures.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import counts_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics import registry  # noqa: E402
from store.project import write_json_atomic  # noqa: E402


def _value_range(spec: registry.MetricSpec) -> tuple[float, float]:
    low = 0.0 if spec.low is None else float(spec.low)
    high = low + 1000.0 if spec.high is None else float(spec.high)
    return low, high


def _metric_frame(dataset: str, name: str, version: int, image_ids, object_ids, values) -> pd.DataFrame:
    count = len(values)
    return pd.DataFrame(
        {
            "dataset": pd.Series([dataset] * count, dtype="string"),
            "image_id": np.asarray(image_ids, dtype="int64"),
            "object_id": pd.Series(object_ids if object_ids is not None else [None] * count, dtype="Int64"),
            "metric": pd.Series([name] * count, dtype="string"),
            "version": np.full(count, version, dtype="int64"),
            "value": np.asarray(values, dtype="float64"),
        }
    )


def build_project(root: Path, n_images: int, n_objects: int, seed: int = 0) -> dict[str, int]:
    """The synthetic project; returns counts per dataset."""
    rng = np.random.default_rng(seed)
    write_json_atomic(root / "project.json", {"version": 1, "plugins": [], "settings": {}})
    image_specs = [s for s in registry.all_specs("image")]
    object_specs = [s for s in registry.all_specs("object")]
    split = {
        "synthetic_a": (n_images // 2, n_objects // 2),
        "synthetic_b": (n_images - n_images // 2, n_objects - n_objects // 2),
    }
    counts = {}
    for index, (dataset, (images_n, objects_n)) in enumerate(split.items()):
        folder = root / "datasets" / dataset
        (folder / "metrics").mkdir(parents=True, exist_ok=True)
        image_ids = np.arange(images_n, dtype="int64")
        width = rng.choice([640, 1024, 3264, 4000], size=images_n)
        height = (width * rng.choice([0.75, 1.0, 1.333], size=images_n)).astype("int64")
        images = pd.DataFrame(
            {
                "dataset": pd.Series([dataset] * images_n, dtype="string"),
                "image_id": image_ids,
                "file_name": [f"batch_{i // 1000}/{i:07d}.jpg" for i in image_ids],
                "path": "",
                "width": width.astype("int64"),
                "height": height,
                "decoded_width": pd.Series([None] * images_n, dtype="Int64"),
                "decoded_height": pd.Series([None] * images_n, dtype="Int64"),
                "exif_orientation": pd.Series([None] * images_n, dtype="Int64"),
                "orientation_applied": False,
                "status": "missing",
                "error": "file not found",
                "file_size": pd.Series([None] * images_n, dtype="Int64"),
                "content_hash": "",
                "pixel_hash": "",
                "phash": pd.Series([None] * images_n, dtype="Int64"),
            }
        )
        images.to_parquet(folder / "images.parquet", index=False)
        categories = pd.DataFrame(
            {"dataset": dataset, "category_id": np.arange(1, 61, dtype="int64"),
             "name": [f"class_{k:02d}" for k in range(1, 61)], "supercategory": "litter"}
        )  # fmt: skip
        categories.to_parquet(folder / "categories.parquet", index=False)
        owner = np.sort(rng.integers(0, images_n, size=objects_n))
        bw = rng.uniform(4, 400, objects_n)
        bh = rng.uniform(4, 400, objects_n)
        objects = pd.DataFrame(
            {
                "dataset": pd.Series([dataset] * objects_n, dtype="string"),
                "object_id": np.arange(1, objects_n + 1, dtype="int64"),
                "image_id": owner,
                "category_id": (rng.zipf(1.6, objects_n) % 60 + 1).astype("int64"),
                "bbox_x": rng.uniform(0, 600, objects_n), "bbox_y": rng.uniform(0, 400, objects_n),
                "bbox_w": bw, "bbox_h": bh, "area": bw * bh * 0.7, "iscrowd": np.zeros(objects_n, dtype="int64"),
                "segmentation": "", "seg_type": "none",
            }
        )  # fmt: skip
        objects.to_parquet(folder / "objects.parquet", index=False)
        shift = 0.1 * index  # the two datasets differ a little, so Compare has something to rank
        for spec in image_specs:
            low, high = _value_range(spec)
            values = low + (high - low) * np.clip(rng.beta(2 + 3 * shift, 2, images_n), 0, 1)
            frame = _metric_frame(dataset, spec.name, spec.version, image_ids, None, values)
            frame.to_parquet(folder / "metrics" / f"image__{spec.name}.parquet", index=False)
        for spec in object_specs:
            low, high = _value_range(spec)
            values = low + (high - low) * np.clip(rng.beta(2, 2 + 3 * shift, objects_n), 0, 1)
            frame = _metric_frame(dataset, spec.name, spec.version, owner, objects["object_id"], values)
            frame.to_parquet(folder / "metrics" / f"object__{spec.name}.parquet", index=False)
        groups = max(1, images_n // 200)
        dup_ids = rng.choice(image_ids, size=min(images_n, groups * 2), replace=False)
        duplicates = pd.DataFrame(
            {"dataset": dataset, "image_id": dup_ids.astype("int64"),
             "kind": np.where(np.arange(len(dup_ids)) % 3 == 0, "exact", "near"),
             "group_id": (np.arange(len(dup_ids)) // 2).astype("int64")}
        )  # fmt: skip
        duplicates.to_parquet(folder / "duplicates.parquet", index=False)
        dataset_counts = {"images": images_n, "objects": objects_n, "categories": 60,
                          "categories_used": int(objects["category_id"].nunique()),
                          "missing_images": images_n, "unreadable_images": 0}  # fmt: skip
        write_json_atomic(
            folder / "dataset.json", {"name": dataset, "counts": dataset_counts, "info": {"synthetic": True}}
        )
        counts[dataset] = dataset_counts
    return counts


def prewarm(root: Path) -> tuple[float, float, dict[str, float]]:
    """What an import adds after its commit: the pages' opening summaries, from an empty cache.

    Run in a child process so its imports (scipy for the Compare ranking) do not make the pages'
    "first" renders below look cheaper than a fresh server's.
    """
    import subprocess

    code = (
        "import json, sys, time; sys.path.insert(0, sys.argv[2]);"
        "from store import page_summaries, summary_cache; from store.project import Project;"
        "[p.unlink() for p in summary_cache.entries(Project(sys.argv[1]))];"
        "w, c = time.perf_counter(), time.process_time(); parts = page_summaries.prewarm(sys.argv[1]);"
        "print(json.dumps([time.perf_counter() - w, time.process_time() - c, parts]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root), str(REPO)], check=True, capture_output=True, text=True
    ).stdout
    wall, cpu, parts = json.loads(out.strip().splitlines()[-1])
    return round(wall, 2), round(cpu, 2), parts


def page_files() -> list[str]:
    """Page files app.py lists, in its order, that exist now."""
    tree = ast.parse((REPO / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            files = [elt.elts[0].value for elt in node.value.elts]
            return [f for f in files if (REPO / "pages" / f).is_file()]
    raise SystemExit("app.py has no PAGES list")


CPU_SECONDS: dict[str, float] = {}  # CPU time (all threads) of the latest run of each page


def _clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def _run(page: str, project: Path, query: dict | None = None, timeout: float = 600):
    """Run app.py (sidebar + navigation) switched to the page, as the server does for /PAGE."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    at.session_state["project"] = str(project)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page(f"pages/{page}")
    started, cpu = time.perf_counter(), time.process_time()
    at.run()
    CPU_SECONDS[page] = round(time.process_time() - cpu, 2)
    return at, time.perf_counter() - started


def time_pages(project: Path) -> dict[str, float | str]:
    results: dict[str, float | str] = {}
    _run("summary.py", project)  # warm-up: imports (streamlit, plotly, duckdb), not a page's cost
    for page in page_files():
        _clear_caches()
        at, seconds = _run(page, project)
        results[page] = round(seconds, 2) if not at.exception else f"exception: {at.exception[0].value[:200]}"
    for page in page_files():  # again, caches cleared but modules imported: the query + drawing cost
        _clear_caches()
        at, seconds = _run(page, project)
        results[f"{page} (modules loaded)"] = round(seconds, 2)
        results[f"{page} (modules loaded, CPU s)"] = CPU_SECONDS[page]
    if "export.py" in page_files():
        _clear_caches()
        at, _ = _run("export.py", project)
        started = time.perf_counter()
        at.multiselect(key="fx_cls").set_value(["class_02", "class_03"]).run()
        results["export.py: change classes"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        at.multiselect(key="fx_range_metrics").set_value(["object_area_relative"]).run()
        results["export.py: add metric range"] = round(time.perf_counter() - started, 2)
        results["export.py: counts shown"] = [m.value for m in at.metric]
    if "compare.py" in page_files():
        _clear_caches()
        at, _ = _run("compare.py", project)
        started = time.perf_counter()
        at.selectbox(key="cmp_a").set_value("synthetic_b").run()
        results["compare.py: swap datasets (uncached)"] = round(time.perf_counter() - started, 2)
    return results


def main() -> None:
    parser = counts_parser(__doc__.split("\n\n")[0], images=100_000, objects=1_000_000)
    parser.add_argument("--keep", help="build (or reuse) the project in this folder and keep it")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cocolens_app_bench_"))
    try:
        started = time.perf_counter()
        if not (root / "project.json").is_file():
            build_project(root, args.images, args.objects)
        build_s = time.perf_counter() - started
        prewarm_s, prewarm_cpu_s, prewarm_parts = prewarm(root)
        results = time_pages(root)
        print(json.dumps({
            "images": args.images, "objects": args.objects, "build_s": round(build_s, 1),
            "prewarm_s": prewarm_s, "prewarm_cpu_s": prewarm_cpu_s, "prewarm_parts_s": prewarm_parts,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "machine": f"{os.cpu_count()} CPU, {platform.machine()}, load {os.getloadavg()[0]:.1f}",
            "pages_s": results,
        }))  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
