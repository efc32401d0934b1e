"""The parallel image pass: compute_image over many records in worker processes, yielded as it goes.

Results are yielded per image as chunks complete (in completion order, with the record index), so the
importer can checkpoint partial progress and resume. Workers are started with the ``spawn`` method
(safe with threads, torch and macOS) and load the project's plugins in their initializer, so custom
metrics registered there run in the workers exactly as in the parent.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from metrics import registry
from metrics.image import compute_image
from metrics.malloc_tuning import keep_freed_memory

# Records per task: big enough to amortise inter-process overhead, small enough to checkpoint often.
DEFAULT_CHUNK_SIZE = 16


def _init_worker(plugins: Sequence[str], parent: int | None = None) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent stops the pool and says so
    # in one line; workers printing their own KeyboardInterrupt tracebacks only buried it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()  # forked while the parent imported with collection paused (metrics.gc_tuning)
    if parent is not None:
        _exit_with_parent(parent)
    import cv2

    cv2.setNumThreads(1)  # the pool is the parallelism: OpenCV's own threads only oversubscribed the cores
    keep_freed_memory()  # a worker only runs the image pass: reuse its pages photo after photo
    registry.ensure_builtin_loaded(registry.PIXEL_MODULES if not plugins else registry.BUILTIN_MODULES)
    for plugin in plugins:
        registry.load_plugin(plugin)


# prctl(2) option: the signal this process gets when the thread that created it exits.
_PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent: int) -> None:
    """Have the kernel stop this worker when its parent dies (Linux; elsewhere nothing changes).

    A worker waits for chunks on a queue whose write end every worker also holds, so a parent
    killed with SIGKILL (an OOM kill, a cancelled job) left its idle workers waiting forever.
    """
    from metrics.malloc_tuning import libc_function

    prctl = libc_function("prctl")
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _new_pool(workers: int, plugins: Sequence[str], start_method: str = "spawn") -> Any:
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(start_method),
        initializer=_init_worker,
        initargs=(list(plugins), os.getpid()),
    )


def _early_start_method(fork: bool) -> str:
    """'fork' where the caller allows it and forking this process now is safe, else 'spawn'.

    A forked worker starts with numpy, Pillow, OpenCV and the pixel metrics already imported by
    this process; a spawned one imports them again (~0.2 CPU-s each: a fifth of a 200-photo
    import's CPU on two cores went to the two workers' imports). Safe means: the caller knows this
    process has started no thread pool of its own (``fork``: a command at its start, cli.run), on
    Linux (macOS system libraries are not fork-safe), with no other Python thread. A longer-lived
    process may hold threads Python does not list (OpenCV's pool, a test runner's I/O thread)
    whose locks a child inherits locked: a worker forked inside the test suite hung in
    ``cv2.setNumThreads``. At a command's start the only native threads are the two OpenBLAS
    pools' (numpy's and OpenCV's), which re-create themselves in the child through their fork
    handlers.
    """
    import threading

    if fork and sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


# A pool started ahead of its pass by start_workers_early: (pool, workers, plugins).
_early_pool: tuple[Any, int, tuple[str, ...]] | None = None
# Chunks queued on that pool by queue_early, by chunk key (_chunk_key): Future of _compute_chunk.
_early_chunks: dict[tuple, Any] = {}


def start_workers_early(workers: int, plugins: Sequence[str] = (), fork: bool = False) -> None:
    """Start the image pass's worker processes now, before the caller's own imports and validation.

    Forked where allowed and safe (:func:`_early_start_method`), they begin with the pixel modules
    this process has just imported; spawned, each spends ~0.2 CPU-s importing them, which then
    overlaps the parent's ~0.5 s of imports and COCO validation instead of following them. The
    next :func:`run_image_pass` with the same ``workers`` and ``plugins`` takes this pool; call
    :func:`discard_early_workers` when no pass may follow.
    """
    global _early_pool
    if workers <= 1 or _early_pool is not None:
        return
    import cv2  # noqa: F401  (here, so that forked workers inherit it)

    registry.ensure_builtin_loaded(registry.PIXEL_MODULES)
    pool = _new_pool(workers, plugins, _early_start_method(fork))
    for _ in range(workers):  # the executor spawns a process per task it cannot hand to an idle one
        pool.submit(int)
    _early_pool = (pool, workers, tuple(plugins))


def queue_early(records: list[dict[str, Any]], chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Have the early pool compute ``records`` now, ahead of the :func:`run_image_pass` expected for them.

    The records are a guess made before the caller has validated its input. The pass adopts the
    queued chunks only when every one of them is a chunk of its own, with exactly its records and
    indices (the results are a pure function of the record and the file); otherwise it stops this
    pool, the queued work with it, and starts a new one. Returns the number of chunks queued (0
    without an early pool, or when the pass would not use a pool).
    """
    if _early_pool is None or len(records) <= chunk_size:
        return 0
    pool = _early_pool[0]
    for chunk in _chunks(records, chunk_size):
        key = _chunk_key(chunk)
        if key is not None and key not in _early_chunks:
            _early_chunks[key] = pool.submit(_compute_chunk, chunk)
    return len(_early_chunks)


def discard_early_workers() -> None:
    """Stop a pool from :func:`start_workers_early` that no pass took (no-op otherwise)."""
    global _early_pool
    _early_chunks.clear()
    if _early_pool is not None:
        _early_pool[0].shutdown(wait=False, cancel_futures=True)
        _early_pool = None


def _take_pool(
    workers: int, plugins: Sequence[str], chunks: list[list[tuple[int, dict[str, Any]]]]
) -> tuple[Any, dict[int, Any]]:
    """The early pool and its queued chunks (by index into ``chunks``) when both were made for this
    pass, else a new pool.

    Queued chunks that are not all among the pass's ``chunks`` (a wrong guess, a resumed import)
    stop the early pool with its queue: cancelling single queued futures of a live pool instead
    can leave them in its work table, where a later broken pool fails to set their exception and
    leaves the other futures waiting forever (CPython 3.11). Chunk keys are only built when
    something was queued (~0.3 s for 100k records).
    """
    global _early_pool
    if _early_pool is not None and _early_pool[1:] == (workers, tuple(plugins)):
        index_of = {_chunk_key(chunk): i for i, chunk in enumerate(chunks)} if _early_chunks else {}
        if _early_chunks.keys() <= index_of.keys():
            pool, _early_pool = _early_pool[0], None
            queued = {index_of[key]: future for key, future in _early_chunks.items()}
            _early_chunks.clear()
            return pool, queued
    discard_early_workers()
    return _new_pool(workers, plugins), {}


def _chunks(records: list[dict[str, Any]], chunk_size: int) -> list[list[tuple[int, dict[str, Any]]]]:
    total = len(records)
    return [
        [(index, records[index]) for index in range(start, min(start + chunk_size, total))]
        for start in range(0, total, max(1, chunk_size))
    ]


def _chunk_key(chunk: list[tuple[int, dict[str, Any]]]) -> tuple | None:
    """What a chunk's results depend on: its indices and records (None when a value is unhashable)."""
    try:
        key = tuple((index, tuple(sorted(record.items()))) for index, record in chunk)
        hash(key)
    except TypeError:
        return None
    return key


def _compute_chunk(chunk: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    return [(index, compute_image(record)) for index, record in chunk]


def run_image_pass(
    records: list[dict[str, Any]],
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    plugins: Sequence[str] = (),
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(index into records, compute_image(record))`` for every record, as results arrive.

    ``workers=1``, or records fitting one chunk, run in this process (no pool start-up; plugins
    are loaded here). Otherwise ``workers`` processes take chunks from the front of the queue
    (the chunks :func:`queue_early` submitted ahead are adopted instead), and this process, rather
    than wait, computes chunks from the back of the queue whenever no result is ready: on a
    200-photo folder the spawned workers' start-up (~1 s of imports each, both cores busy) was a
    third of the pass with nothing computed. ``progress(done, total)`` is called after each chunk.
    Order of results is not the order of ``records``: use the index.
    """
    total = len(records)
    chunks = _chunks(records, chunk_size)
    done = 0
    if workers <= 1 or total <= chunk_size:
        _load_here(plugins)
        for chunk in chunks:
            yield from _compute_chunk_here(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        return
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    # A process pool whose workers die (killed, or unable to start in a broken environment) must not
    # hang the import: multiprocessing.Pool respawns them and waits forever for the lost chunk, while
    # ProcessPoolExecutor says BrokenProcessPool; the chunks not done then run in this process.
    remaining = set(range(len(chunks)))
    pool, queued_early = _take_pool(workers, plugins, chunks)
    in_flight: dict[Any, int] = {future: index for index, future in queued_early.items()}
    queue = deque(index for index in range(len(chunks)) if index not in queued_early)
    _load_here(plugins)
    try:
        while queue or in_flight:
            while queue and len(in_flight) < 2 * workers:  # a little ahead, so no worker waits
                index = queue.popleft()
                in_flight[pool.submit(_compute_chunk, chunks[index])] = index
            finished, _ = wait(in_flight, timeout=0, return_when=FIRST_COMPLETED)
            if not finished and queue:
                # Nothing back yet (the spawned workers take ~1 s to import numpy, cv2, Pillow):
                # this process, idle otherwise, takes a chunk from the far end of the queue.
                index = queue.pop()
                finished_here = [(index, _compute_chunk_here(chunks[index]))]
            else:
                if not finished:
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                finished_here = [(in_flight.pop(future), future.result()) for future in finished]
            for index, results in finished_here:
                remaining.discard(index)
                yield from results
                done += len(results)
                if progress is not None:
                    progress(done, total)
    except BrokenProcessPool as exc:
        logging.getLogger(__name__).warning("image pass workers died (%s); finishing in this process", exc)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if remaining:
        for index in sorted(remaining):
            results = _compute_chunk_here(chunks[index])
            yield from results
            done += len(results)
            if progress is not None:
                progress(done, total)


def _load_here(plugins: Sequence[str]) -> None:
    registry.ensure_builtin_loaded()
    for plugin in plugins:
        registry.load_plugin(plugin)


def _compute_chunk_here(chunk: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """A chunk in this process, with OpenCV on one thread as in the workers (two cores, three processes)."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    keep_freed_memory()
    try:
        return _compute_chunk(chunk)
    finally:
        cv2.setNumThreads(threads)
