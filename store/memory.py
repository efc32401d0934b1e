"""Give freed memory back to the operating system between the phases of a long write.

pandas/numpy frames freed by ``del`` go back to glibc's heap, which keeps much of it mapped; the
next phase (DuckDB for the page-summary prewarm) then adds its own memory on top, and the process's
peak is the sum. ``malloc_trim`` returns the free heap pages, so the peak is the larger phase only.
"""

from __future__ import annotations

import gc

from metrics.malloc_tuning import libc_function


def release_freed_memory() -> None:
    """Collect garbage and trim glibc's heap (a no-op where libc has no ``malloc_trim``)."""
    gc.collect()
    trim = libc_function("malloc_trim")
    if trim is not None:
        trim(0)
