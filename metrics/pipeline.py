"""The parallel image pass: compute_image over many records in worker processes, yielded as it goes.

Results are yielded per image as chunks complete (in completion order, with the record index), so the
importer can checkpoint partial progress and resume. Workers are started with the ``spawn`` method
(safe with threads, torch and macOS) and load the project's plugins in their initializer, so custom
metrics registered there run in the workers exactly as in the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from metrics import registry
from metrics.image import compute_image

# Records per task: big enough to amortise inter-process overhead, small enough to checkpoint often.
DEFAULT_CHUNK_SIZE = 16


def _init_worker(plugins: Sequence[str]) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent stops the pool and says so
    # in one line; workers printing their own KeyboardInterrupt tracebacks only buried it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    registry.ensure_builtin_loaded()
    for plugin in plugins:
        registry.load_plugin(plugin)


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
    are loaded here). ``progress(done, total)``
    is called after each chunk. Order of results is not the order of ``records``: use the index.
    """
    total = len(records)
    chunks = [
        [(index, records[index]) for index in range(start, min(start + chunk_size, total))]
        for start in range(0, total, max(1, chunk_size))
    ]
    done = 0
    if workers <= 1 or total <= chunk_size:
        registry.ensure_builtin_loaded()
        for plugin in plugins:
            registry.load_plugin(plugin)
        for chunk in chunks:
            yield from _compute_chunk(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # A process pool whose workers die (killed, or unable to start in a broken environment) must not
    # hang the import: multiprocessing.Pool respawns them and waits forever for the lost chunk, while
    # ProcessPoolExecutor says BrokenProcessPool; the chunks not done then run in this process.
    remaining = set(range(len(chunks)))
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(list(plugins),),
    )
    try:
        futures = {pool.submit(_compute_chunk, chunk): i for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            results = future.result()
            remaining.discard(futures[future])
            yield from results
            done += len(results)
            if progress is not None:
                progress(done, total)
    except BrokenProcessPool as exc:
        logging.getLogger(__name__).warning("image pass workers died (%s); finishing in this process", exc)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if remaining:
        registry.ensure_builtin_loaded()
        for plugin in plugins:
            registry.load_plugin(plugin)
        for index in sorted(remaining):
            results = _compute_chunk(chunks[index])
            yield from results
            done += len(results)
            if progress is not None:
                progress(done, total)
