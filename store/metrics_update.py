"""``cocolens metrics``: compute new or changed metrics without re-importing.

A metric is recomputed when its stored version differs from the registry's (or it is absent);
results are keyed by name + version. Custom modules named with ``--add`` are remembered in
project.json so that later imports and recomputations include them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from metrics import registry
from store.errors import InputError
from store.metric_runner import compute_table_metrics, stale_metrics, write_pixel_metrics
from store.project import Project


def _load_plugins(project: Project, add: list[str]) -> list[str]:
    plugins = list(project.meta().get("plugins", []))
    for target in add:
        stored = str(Path(target).resolve()) if target.endswith(".py") else target
        try:
            registry.load_plugin(stored)
        except Exception as exc:  # the user's module: name it and say what went wrong, in one line
            raise InputError(
                target, f"cannot load custom metrics: {type(exc).__name__}: {exc}", field="--add"
            ) from exc
        if stored not in plugins:
            plugins.append(stored)
    for target in plugins:
        if target not in [str(Path(a).resolve()) if a.endswith(".py") else a for a in add]:
            registry.load_plugin(target)
    return plugins


def _for_dataset(
    progress: Callable[[str, int, int], None] | None, dataset: str
) -> Callable[[str, int, int], None] | None:
    """Stage names that say which dataset they count (one progress bar per dataset, not one reused)."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{stage} · {dataset}", done, total)


def update_metrics(
    project_dir: str | Path,
    add: list[str] | None = None,
    workers: int = 2,
    embeddings: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    engine: str | None = None,
    label_issues: bool = True,
) -> dict[str, Any]:
    """Compute stale metrics (and embeddings when asked), then the label-error pass of each dataset
    whose labels, embeddings or newest model changed since its last pass."""
    project = Project(project_dir)
    if not project.exists():
        raise InputError(str(project_dir), "not a cocolens project (no project.json)", field="--project")
    from store.coco_import import resolve_engine

    engine = resolve_engine(project, engine)
    plugins = _load_plugins(project, add or [])
    summary: dict[str, Any] = {}
    with project.writing():
        # Every stale metric of every dataset is computed into .staging first and moved into place
        # only when all succeeded: a plugin whose second metric raised used to leave the first one
        # written (exit 2 with the project changed). A kill mid-way leaves whole files only.
        stage_root = project.staging_dir / "metrics-update"
        shutil.rmtree(stage_root, ignore_errors=True)
        staged: list[tuple[Path, Path]] = []
        try:
            for dataset in project.datasets():
                folder = project.dataset_dir(dataset)
                stage = stage_root / dataset
                pixel, table = stale_metrics(folder)
                summary[dataset] = {"pixel_metrics": pixel, "table_metrics": table}
                if not (pixel or table):
                    continue  # up to date: nothing to read
                images = pd.read_parquet(folder / "images.parquet")
                objects = pd.read_parquet(folder / "objects.parquet") if table else None
                if pixel:
                    from metrics.engines import image_results

                    records = [
                        {"path": p, "width": int(w), "height": int(h)}
                        for p, w, h in zip(images["path"], images["width"], images["height"], strict=True)
                    ]
                    results: list[dict] = [{} for _ in records]
                    for done, (index, result) in enumerate(
                        image_results(records, engine=engine, workers=workers, plugins=plugins), 1
                    ):
                        results[index] = result.get("metrics", {})
                        if progress:
                            progress(f"image metrics · {dataset}", done, len(records))
                    write_pixel_metrics(dataset, stage, images["image_id"].to_numpy(), results, only=pixel)
                if table:
                    compute_table_metrics(
                        dataset, stage, objects, images, only=table, engine=engine, workers=workers
                    )
                staged.append((stage / "metrics", folder / "metrics"))
            for source, target in staged:
                if source.is_dir():
                    target.mkdir(exist_ok=True)
                    for path in sorted(source.glob("*.parquet")):
                        os.replace(path, target / path.name)  # each file atomically, old or new
            if embeddings:
                from store.embedding_store import compute_dataset_embeddings

                for dataset in project.datasets():
                    summary[dataset]["embeddings"] = compute_dataset_embeddings(
                        project,
                        dataset,
                        progress=_for_dataset(progress, dataset),
                        engine=engine,
                        workers=workers,
                    )
            if label_issues:
                from store.label_issues import compute_label_issues

                names = project.datasets()
                for done, dataset in enumerate(names):
                    if progress:
                        progress("label-error pass (datasets)", done, len(names))
                    summary.setdefault(dataset, {})["label_issues"] = compute_label_issues(project, dataset)
                if progress:
                    progress("label-error pass (datasets)", len(names), len(names))
            project.update_meta(plugins=plugins)
            from store import page_summaries

            page_summaries.prewarm(project.root)  # the pages' opening summaries of the new values
        finally:
            shutil.rmtree(stage_root, ignore_errors=True)
            with contextlib.suppress(OSError):
                project.staging_dir.rmdir()  # only when empty: a killed import's chunks stay
    return {
        "plugins": plugins,
        "datasets": summary,
        "registry": json.loads(json.dumps(sorted(registry.specs_by_name()))),
    }
