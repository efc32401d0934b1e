"""The parallel image pass: same results as in-process, every index once, plugins loaded in workers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics import registry
from metrics.image import compute_image
from metrics.pipeline import run_image_pass
from tests.conftest import shared

PLUGIN = """
from metrics.registry import image_metric


@image_metric(name="test_plugin_mean_red", low=0, high=255, description="Mean of the red channel (test plugin).")
def mean_red(ctx):
    return float(ctx.rgb[:, :, 0].mean())
"""


def fruit_records() -> list[dict]:
    folder = shared("fruits_nuts", "images")
    return [{"path": str(p), "width": 800, "height": 600} for p in sorted(folder.glob("*.jpg"))]


def test_two_workers_match_in_process_results_with_progress(tmp_path: Path) -> None:
    records = fruit_records()[:10]
    records.append({"path": str(tmp_path / "missing.jpg"), "width": 10, "height": 20})
    (tmp_path / "empty.jpg").write_bytes(b"")
    records.append({"path": str(tmp_path / "empty.jpg"), "width": 10, "height": 20})
    seen = []
    parallel = dict(
        run_image_pass(records, workers=2, chunk_size=3, progress=lambda d, t: seen.append((d, t)))
    )
    assert sorted(parallel) == list(range(len(records)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (12, 12)
    assert all(t == 12 for _, t in seen) and len(seen) == 4  # one call per chunk of 3
    serial = dict(run_image_pass(records, workers=1, chunk_size=5))
    for index, record in enumerate(records):
        assert parallel[index] == serial[index] == compute_image(record)
    assert parallel[10]["status"] == "missing" and parallel[11]["status"] == "unreadable"
    assert parallel[10]["metrics"]["area"] == 200


def test_workers_load_plugins_and_stream_results(tmp_path: Path) -> None:
    plugin = tmp_path / "my_metrics.py"
    plugin.write_text(PLUGIN)
    pixels = np.zeros((40, 50, 3), np.uint8)
    pixels[..., 0] = 100
    records = []
    for k in range(6):
        path = tmp_path / f"red_{k}.png"
        Image.fromarray(pixels).save(path)
        records.append({"path": str(path), "width": 50, "height": 40})
    try:
        stream = run_image_pass(records, workers=2, chunk_size=2, plugins=[str(plugin)])
        first_index, first = next(stream)  # a result is usable (checkpointable) before the pass ends
        assert first["status"] == "ok" and 0 <= first_index < 6
        results = {first_index: first, **dict(stream)}
        assert sorted(results) == list(range(6))
        assert all(r["metrics"]["test_plugin_mean_red"] == 100.0 for r in results.values())
    finally:
        registry._REGISTRY.pop("test_plugin_mean_red", None)


def test_workers_started_early_serve_the_next_pass_and_a_mismatch_gets_its_own(tmp_path: Path) -> None:
    from metrics import pipeline

    records = fruit_records()[:6]
    pipeline.start_workers_early(2)
    try:
        early = pipeline._early_pool
        assert early is not None and len(early[0]._processes) == 2  # spawned now, not at the pass
        results = dict(run_image_pass(records, workers=2, chunk_size=2))
        assert pipeline._early_pool is None  # taken by the pass (and shut down by it)
        assert results[5] == compute_image(records[5])

        pipeline.start_workers_early(2)
        pool = pipeline._early_pool[0]
        plugin = tmp_path / "my_metrics.py"
        plugin.write_text(PLUGIN)
        with_plugin = dict(run_image_pass(records, workers=2, chunk_size=2, plugins=[str(plugin)]))
        assert pipeline._early_pool is None and pool._shutdown_thread  # stopped, not used
        assert with_plugin[0]["metrics"]["test_plugin_mean_red"] is not None
    finally:
        pipeline.discard_early_workers()
        registry._REGISTRY.pop("test_plugin_mean_red", None)


_POOL_THEN_WAIT = """
import sys, time
sys.path.insert(0, {repo!r})
from metrics import pipeline
pipeline.start_workers_early(2)
pool = pipeline._early_pool[0]
pool.submit(int).result()  # both workers have run their initializer by the time this returns
pool.submit(int).result()
print(*pool._processes, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_workers_exit_when_their_parent_is_killed() -> None:
    """A SIGKILLed importer (OOM kill, cancelled job) must not leave its workers waiting forever."""
    repo = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen(
        [sys.executable, "-c", _POOL_THEN_WAIT.format(repo=repo)], stdout=subprocess.PIPE, text=True
    )
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _made_records(folder: Path, count: int) -> list[dict]:
    """``count`` small JPEGs of different colours, with their records."""
    records = []
    for k in range(count):
        path = folder / f"made_{k}.jpg"
        Image.new("RGB", (48, 32), (20 * k % 256, 90, 200 - 10 * k)).save(path)
        records.append({"path": str(path), "width": 48, "height": 32})
    return records


def test_a_pass_adopts_the_chunks_queued_early_for_its_records(tmp_path: Path, monkeypatch) -> None:
    from concurrent.futures import wait

    from metrics import pipeline

    records = _made_records(tmp_path, 6)
    pipeline.start_workers_early(2)
    try:
        assert pipeline.queue_early(records, chunk_size=2) == 3
        wait(list(pipeline._early_chunks.values()))
        pool = pipeline._early_pool[0]
        submitted, here = [], []
        real_submit, real_here = pool.submit, pipeline._compute_chunk_here
        monkeypatch.setattr(
            pool, "submit", lambda fn, chunk: submitted.append(chunk) or real_submit(fn, chunk)
        )
        monkeypatch.setattr(
            pipeline, "_compute_chunk_here", lambda chunk: here.append(chunk) or real_here(chunk)
        )
        results = dict(run_image_pass(records, workers=2, chunk_size=2))
    finally:
        pipeline.discard_early_workers()
    assert results == {index: compute_image(record) for index, record in enumerate(records)}
    assert submitted == [] and here == []  # every chunk came from the early queue
    assert pipeline._early_chunks == {}


def test_a_wrong_guess_stops_the_early_pool_and_the_pass_computes_everything_anew(tmp_path: Path) -> None:
    from metrics import pipeline

    records = _made_records(tmp_path, 6)
    guess = [dict(records[0], width=49), *records[1:]]  # the first chunk guessed a wrong width
    pipeline.start_workers_early(2)
    try:
        assert pipeline.queue_early(guess, chunk_size=2) == 3
        early = pipeline._early_pool[0]
        results = dict(run_image_pass(records, workers=2, chunk_size=2))
    finally:
        pipeline.discard_early_workers()
    assert results == {index: compute_image(record) for index, record in enumerate(records)}
    assert results[0]["error"] == ""  # not the guess's "decoded size differs from the record"
    assert early._shutdown_thread and pipeline._early_pool is None and pipeline._early_chunks == {}


def test_nothing_is_queued_early_without_an_early_pool_or_for_a_pass_run_in_this_process(
    tmp_path: Path,
) -> None:
    from metrics import pipeline

    records = _made_records(tmp_path, 3)
    assert pipeline.queue_early(records, chunk_size=2) == 0  # no early pool
    pipeline.start_workers_early(2)
    try:
        assert pipeline.queue_early(records[:2], chunk_size=2) == 0  # one chunk: the pass runs here
        assert pipeline.queue_early([{"path": "x", "width": [1]}] * 3, chunk_size=2) == 0  # not hashable
    finally:
        pipeline.discard_early_workers()


_FORKED_POOL = """
import sys
sys.path.insert(0, {repo!r})
from metrics import pipeline
from metrics.image import compute_image
import gc
records = [{{"path": p, "width": 48, "height": 32}} for p in sys.argv[1:]]
gc.disable()  # as cli's import does while it starts them (metrics.gc_tuning)
pipeline.start_workers_early(2, fork=True)
print(pipeline._early_pool[0]._mp_context.get_start_method())
print(pipeline._early_pool[0].submit(gc.isenabled).result())
pipeline.queue_early(records, chunk_size=2)
results = dict(pipeline.run_image_pass(records, workers=2, chunk_size=2))
print(results == {{i: compute_image(r) for i, r in enumerate(records)}})
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_single_threaded_importer_forks_its_workers_and_they_compute_what_this_process_does(
    tmp_path: Path,
) -> None:
    """Forked only when the caller says nothing else runs yet and no other thread is seen."""
    import threading

    from metrics import pipeline

    repo = str(Path(__file__).resolve().parents[2])
    paths = [record["path"] for record in _made_records(tmp_path, 5)]
    done = subprocess.run(
        [sys.executable, "-c", _FORKED_POOL.format(repo=repo), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["fork", "True", "True"], done.stderr  # method, collector on, results
    assert pipeline._early_start_method(fork=False) == "spawn"  # a caller that runs on (tests, the app)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:  # another thread could hold a lock a forked child would inherit locked
        assert pipeline._early_start_method(fork=True) == "spawn"
    finally:
        release.set()
        other.join()
