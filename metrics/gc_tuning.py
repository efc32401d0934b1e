"""Keep Python's cyclic garbage collector off the modules a command imports once and keeps to its end.

Why: a 200-photo ``cocolens import coco`` ran 216 young and 2 full collections in its main thread,
~0.08 s (gc.callbacks, 2 vCPU), nearly all of it traversing the functions, classes and tables of
pandas, pyarrow and DuckDB's modules while they were being imported, and every one of those
objects lives until the process exits. Importing them with the collector paused and freezing the
result (``gc.freeze``: later collections skip it) leaves ~0.01 s of collections for the objects the
command itself creates. Only for a process that ends with its command (cli.run): a caller that goes
on (a test session, the app) would keep whatever was frozen for good.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def long_lived_imports(whole_process: bool) -> Iterator[None]:
    """Within the block, collection is paused; after it, every object alive is frozen out of it.

    ``whole_process`` False (the command runs inside a longer-lived process) makes this a no-op.
    A process forked inside the block starts with the collector paused: it must ``gc.enable()``.
    """
    if not whole_process:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
