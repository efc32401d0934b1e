"""The summaries the explorer pages open with, by name, through the on-disk summary cache.

Pages ask :func:`summary` (behind Streamlit's in-memory cache) instead of running these queries
themselves; ``cocolens import`` and ``cocolens metrics`` call :func:`prewarm`, which asks the same
questions the pages ask when opened on all datasets, so a fresh server's first render is a read of
a few small files (store/summary_cache.py says why this can never be stale).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import gallery_queries as gq
from store import summary_cache
from store.dataset_compare import comparison
from store.project import fsyncs_at_end
from store.queries import ProjectReader
from store.report import issue_counts

log = logging.getLogger(__name__)

# DuckDB's buffer pool while a writer prewarms: at 100k images / 1M objects the default (80% of RAM)
# took the prewarm from ~0.3 GB to 1.06 GB peak on top of the import's own frames; at 400 MB it
# peaked at 0.56 GB in the same 4.3 s (2026-11-30, bench/scale_bench.py's project). A summary that
# needs more is logged and left for the page, whose reader has no such cap.
PREWARM_MEMORY_LIMIT = "512MB"

# The metric each gallery page shows first (pages/data_quality.py, pages/label_quality.py).
DEFAULT_IMAGE_METRIC = "brightness"
DEFAULT_OBJECT_METRIC = "object_area_relative"


def _counts(reader: ProjectReader) -> Any:
    return reader.dataset_counts()


def _metric_summary(reader: ProjectReader, datasets: list[str]) -> Any:
    return reader.metric_summary(list(datasets))


# name → (function(reader, *args), which args name the datasets it reads: None = every dataset)
SUMMARIES: dict[str, tuple[Callable[..., Any], Callable[[tuple], list[str] | None]]] = {
    "dataset_counts": (_counts, lambda args: None),
    "metric_summary": (_metric_summary, lambda args: list(args[0])),
    "issue_counts": (issue_counts, lambda args: list(args[0])),
    "class_distribution": (gq.class_distribution, lambda args: list(args[0])),
    "dataset_metric_means": (gq.dataset_metric_means, lambda args: list(args[0])),
    "metric_bounds": (gq.metric_bounds, lambda args: list(args[2])),
    "metric_histogram": (gq.metric_histogram, lambda args: list(args[2])),
    "comparison": (comparison, lambda args: [args[0], args[1]]),
}


def summary(reader: ProjectReader, name: str, *args: Any) -> Any:
    """``SUMMARIES[name](reader, *args)`` for the current data, from the project's cache when stored."""
    function, datasets_of = SUMMARIES[name]
    frozen = [list(a) if isinstance(a, list | tuple) else a for a in args]
    return summary_cache.cached(
        reader.project, name, frozen, datasets_of(tuple(args)), lambda: function(reader, *args)
    )


def default_requests(reader: ProjectReader) -> list[tuple[Any, ...]]:
    """(name, *args) of every summary the pages ask for when opened with all datasets selected."""
    datasets = reader.datasets()
    if not datasets:
        return []
    requests: list[tuple[Any, ...]] = [
        ("dataset_counts",),
        ("issue_counts", datasets),
        ("metric_summary", datasets),
        ("class_distribution", datasets),
        ("dataset_metric_means", datasets, "object"),
    ]
    for level, default in (("image", DEFAULT_IMAGE_METRIC), ("object", DEFAULT_OBJECT_METRIC)):
        names = gq.metric_level_names(reader, level)
        metric = default if default in names else (names[0] if names else None)
        if metric is not None:  # the metric the page's picker starts on (pages/gallery.py)
            requests += [
                ("metric_bounds", metric, level, datasets),
                ("metric_histogram", metric, level, datasets),
            ]
    if len(datasets) >= 2:
        requests.append(("comparison", datasets[0], datasets[1]))  # the Compare page's first pair
    return requests


def prewarm(project_dir: str | Path) -> dict[str, float]:
    """Compute and store the pages' opening summaries; returns seconds per summary name.

    Called by writers after they commit (import, metrics); a summary already stored is a read.
    Best effort: the data is committed by then, so a summary that cannot be computed here is
    logged and left for the page to compute (and show its error), not turned into a failed import.
    """
    reader = ProjectReader(project_dir, memory_limit=PREWARM_MEMORY_LIMIT)
    seconds: dict[str, float] = {}
    with fsyncs_at_end():  # ~10 cache files: synced together, not 20 fsyncs one after another
        for name, *args in default_requests(reader):
            started = time.perf_counter()
            try:
                summary(reader, name, *args)
            except Exception as error:  # noqa: BLE001 - a cache fill must not fail a committed write
                log.warning("summary %s not pre-computed: %s", name, error)
                continue
            seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - started, 3)
    return seconds
