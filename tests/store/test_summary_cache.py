"""The on-disk summary cache: hits after a write, misses after any data change, values equal to the queries."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics import registry
from store import page_summaries, summary_cache
from store.coco_import import import_coco
from store.metric_files import metric_frame, write_metric
from store.project import Project
from store.queries import ProjectReader
from tests.conftest import write_small_coco

HISTOGRAM_COLUMNS = ["edges", "density_a", "density_b"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two imported datasets (different pictures): every page summary has something to say."""
    for name, seed in (("alpha", 0), ("beta", 1)):
        images, annotations = write_small_coco(tmp_path / f"src_{name}", n_images=4, seed=seed)
        import_coco(images, annotations, tmp_path / "p", dataset=name, workers=1, prewarm=False)
    return tmp_path / "p"


def _rewrite_metric(root: Path, dataset: str, name: str, values: np.ndarray) -> None:
    """Recompute one image metric in place, as `cocolens metrics` does (new file, os.replace)."""
    project = Project(root)
    folder = project.dataset_dir(dataset)
    image_ids = pd.read_parquet(folder / "images.parquet")["image_id"].to_numpy()
    spec = registry.get(name)
    write_metric(folder, spec, metric_frame(dataset, spec, image_ids, values[: len(image_ids)]))


def _counting(value: object) -> tuple[list[int], object]:
    calls = [0]

    def compute() -> object:
        calls[0] += 1
        return value

    return calls, compute


def _assert_same(direct: object, stored: object) -> None:
    if isinstance(direct, pd.DataFrame):
        assert isinstance(stored, pd.DataFrame)
        if set(HISTOGRAM_COLUMNS) <= set(direct.columns):
            for column in HISTOGRAM_COLUMNS:
                for left, right in zip(direct[column], stored[column], strict=True):
                    np.testing.assert_array_equal(np.asarray(left), np.asarray(right))
            direct, stored = direct.drop(columns=HISTOGRAM_COLUMNS), stored.drop(columns=HISTOGRAM_COLUMNS)
        pd.testing.assert_frame_equal(direct, stored)
    else:
        assert isinstance(direct, dict) and isinstance(stored, dict)
        assert list(direct) == list(stored)
        for key, value in direct.items():
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(stored[key])
            else:
                assert stored[key] == value, key


def test_hit_after_write_and_no_recompute(project: Path) -> None:
    p = Project(project)
    frame = pd.DataFrame({"metric": ["a", "b"], "mean": [0.5, float("nan")], "count": [3, 4]})
    calls, compute = _counting(frame)
    first = summary_cache.cached(p, "probe", ["x", 1], ["alpha"], compute)
    second = summary_cache.cached(p, "probe", ["x", 1], ["alpha"], compute)
    assert calls == [1]  # the second call read the stored entry
    pd.testing.assert_frame_equal(first, frame)
    pd.testing.assert_frame_equal(second, frame)
    assert len(summary_cache.entries(p)) == 1
    calls, compute = _counting({"count": 3, "q1": float("nan")})
    summary_cache.cached(p, "probe_dict", [], None, compute)
    stored = summary_cache.cached(p, "probe_dict", [], None, compute)
    assert calls == [1] and stored["count"] == 3 and np.isnan(stored["q1"])
    calls, compute = _counting(frame)
    summary_cache.cached(p, "probe", ["x", 2], ["alpha"], compute)  # other arguments: another entry
    assert calls == [1]


def test_any_change_to_the_datasets_read_misses(project: Path, tmp_path: Path) -> None:
    p = Project(project)
    calls, compute = _counting({"n": 1})

    def ask(datasets: list[str] | None) -> None:
        summary_cache.cached(p, "probe", [], datasets, compute)

    ask(["alpha"]), ask(None)
    assert calls == [2]
    ask(["alpha"]), ask(None)
    assert calls == [2]
    _rewrite_metric(project, "beta", "brightness", np.linspace(0, 1, 10))  # a recomputed metric of beta
    ask(["alpha"])
    assert calls == [2]  # alpha alone did not change
    ask(None)
    assert calls == [3]  # every dataset: beta changed
    _rewrite_metric(project, "alpha", "brightness", np.linspace(0, 1, 10))
    ask(["alpha"])
    assert calls == [4]
    images, annotations = write_small_coco(tmp_path / "src_gamma", n_images=3, seed=5)
    import_coco(images, annotations, project, dataset="gamma", workers=1, prewarm=False)  # a new dataset
    ask(["alpha"]), ask(None)
    assert calls == [5]
    shutil.rmtree(p.dataset_dir("gamma"))  # a deleted dataset
    ask(None)
    assert calls == [6]
    images, annotations = write_small_coco(tmp_path / "src_alpha2", n_images=4, seed=9)
    import_coco(images, annotations, project, dataset="alpha", workers=1, prewarm=False)  # re-imported
    ask(["alpha"])
    assert calls == [7]


def test_a_code_change_misses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = Project(project)
    calls, compute = _counting({"n": 1})
    summary_cache.cached(p, "probe", [], None, compute)
    monkeypatch.setattr(summary_cache, "_code_fingerprint", "another version of the queries")
    summary_cache.cached(p, "probe", [], None, compute)
    assert calls == [2]


def test_summaries_stored_while_the_data_changed_are_not_kept(project: Path) -> None:
    p = Project(project)
    calls = [0]

    def compute_during_a_commit() -> dict[str, int]:
        calls[0] += 1
        if calls[0] == 1:  # another process commits a metric while the query runs
            _rewrite_metric(project, "alpha", "brightness", np.linspace(0, 1, 10))
        return {"n": calls[0]}

    assert summary_cache.cached(p, "probe", [], ["alpha"], compute_during_a_commit) == {"n": 1}
    assert summary_cache.entries(p) == []  # which data it describes is unknown: not stored
    assert summary_cache.cached(p, "probe", [], ["alpha"], compute_during_a_commit) == {"n": 2}
    assert summary_cache.cached(p, "probe", [], ["alpha"], compute_during_a_commit) == {"n": 2}


def test_half_written_or_damaged_entries_are_never_read(project: Path) -> None:
    p = Project(project)
    key, _ = summary_cache.entry_key(p, "probe", [], None)
    folder = summary_cache.cache_dir(p)
    folder.mkdir(parents=True)
    # What a writer killed before os.replace leaves: a temporary beside the entry, never its name.
    (folder / f".probe-{key}.parquet.abc123.tmp").write_bytes(b"PAR1 half a file")
    assert summary_cache.read_entry(p, "probe", key) == (False, None)
    calls, compute = _counting({"n": 1})
    assert summary_cache.cached(p, "probe", [], None, compute) == {"n": 1} and calls == [1]
    # A damaged entry (disk error, someone's editor) is recomputed and replaced, not raised.
    entry = folder / f"probe-{key}.json"
    entry.write_text('{"n": ')
    assert summary_cache.cached(p, "probe", [], None, compute) == {"n": 1} and calls == [2]
    assert summary_cache.cached(p, "probe", [], None, compute) == {"n": 1} and calls == [2]


def test_unwritable_project_still_answers(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(13, "read-only", str(path))

    monkeypatch.setattr(summary_cache, "write_bytes_atomic", refuse)
    calls, compute = _counting({"n": 1})
    assert summary_cache.cached(Project(project), "probe", [], None, compute) == {"n": 1}
    assert summary_cache.entries(Project(project)) == []


def test_pruning_keeps_the_newest_entries(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_cache, "MAX_ENTRIES", 3)
    p = Project(project)
    leftover = summary_cache.cache_dir(p) / ".probe-killed.json.x1.tmp"  # a writer killed an hour ago
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    for index in range(6):
        summary_cache.cached(p, "probe", [index], None, lambda index=index: {"n": index})
    assert len(summary_cache.entries(p)) == 3
    assert not leftover.exists()
    kept = sorted(json.loads(path.read_text())["n"] for path in summary_cache.entries(p))
    assert kept == [3, 4, 5]  # the newest


def test_prewarm_stores_what_the_pages_ask_and_it_equals_the_queries(project: Path) -> None:
    seconds = page_summaries.prewarm(project)
    assert {"metric_summary", "issue_counts", "comparison", "metric_histogram"} <= set(seconds)
    reader = ProjectReader(project)
    requests = page_summaries.default_requests(reader)
    assert ("metric_summary", ["alpha", "beta"]) in requests
    assert ("comparison", "alpha", "beta") in requests
    assert ("metric_bounds", "object_area_relative", "object", ["alpha", "beta"]) in requests
    assert len(summary_cache.entries(reader.project)) == len(requests)
    for name, *args in requests:
        function, _ = page_summaries.SUMMARIES[name]
        direct = function(reader, *args)  # the uncached query
        stored = page_summaries.summary(reader, name, *args)  # read back from disk
        _assert_same(direct, stored)
    # the metric table the Summary page shows, read back: the same figures as ProjectReader's query
    summary = page_summaries.summary(reader, "metric_summary", ["alpha", "beta"])
    assert summary["count"].dtype == np.int64 and len(summary) == len(reader.metric_names())


def test_prewarmed_summaries_are_read_not_computed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page_summaries.prewarm(project)
    reader = ProjectReader(project)

    def fail(*args: object) -> None:
        raise AssertionError("recomputed a stored summary")

    for name, (_, datasets_of) in list(page_summaries.SUMMARIES.items()):
        monkeypatch.setitem(page_summaries.SUMMARIES, name, (fail, datasets_of))
    for name, *args in page_summaries.default_requests(reader):
        page_summaries.summary(reader, name, *args)
    _rewrite_metric(project, "alpha", "brightness", np.linspace(0, 1, 10))
    with pytest.raises(AssertionError, match="recomputed"):  # the data changed: a miss
        page_summaries.summary(reader, "metric_summary", ["alpha", "beta"])


def test_import_and_metrics_prewarm(tmp_path: Path) -> None:
    from store.metrics_update import update_metrics

    images, annotations = write_small_coco(tmp_path / "src", n_images=3)
    root = tmp_path / "p"
    import_coco(images, annotations, root, dataset="only", workers=1)
    reader = ProjectReader(root)
    names = {path.name.partition("-")[0] for path in summary_cache.entries(reader.project)}
    assert {"metric_summary", "issue_counts", "dataset_counts", "class_distribution"} <= names
    assert "comparison" not in names  # one dataset: nothing to compare
    before = set(summary_cache.entries(reader.project))
    _rewrite_metric(root, "only", "brightness", np.linspace(0, 1, 10))
    update_metrics(root, workers=1)
    after = set(summary_cache.entries(reader.project))
    new = {path.name.partition("-")[0] for path in after - before}
    assert {"metric_summary", "issue_counts", "metric_histogram"} <= new  # brightness changed: recomputed


def test_a_summary_that_fails_to_prewarm_does_not_fail_the_committed_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    _, datasets_of = page_summaries.SUMMARIES["issue_counts"]
    monkeypatch.setitem(page_summaries.SUMMARIES, "issue_counts", (broken, datasets_of))
    images, annotations = write_small_coco(tmp_path / "src", n_images=3)
    summary = import_coco(images, annotations, tmp_path / "p", dataset="only", workers=1)
    assert summary["images"] == 3  # committed and reported as a success
    assert "summary issue_counts not pre-computed: disk on fire" in caplog.text
    names = {path.name.partition("-")[0] for path in summary_cache.entries(Project(tmp_path / "p"))}
    assert "issue_counts" not in names and "metric_summary" in names  # the others were still stored
