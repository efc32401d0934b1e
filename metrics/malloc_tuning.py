"""Keep freed heap memory in the process during the image pass instead of handing it back each time.

glibc's malloc serves blocks above ``M_MMAP_THRESHOLD`` (128 kB at start, raised dynamically) with
a fresh ``mmap`` and trims the heap top whenever more than ``M_TRIM_THRESHOLD`` is free. The image
pass allocates a dozen 0.5–2 MB arrays per photo (decoded pixels, grey, float planes) and frees
them all before the next photo, so every photo paid for new zeroed pages: on a 200-photo folder
of ~500k-pixel JPEGs that was 4.5 ms of system time per image next to 7 ms of user time
(bench/pixel_vs_cleanvision.py). With both thresholds raised, the next photo reuses the same
pages: 0.2 ms of system time, the values unchanged (only where the memory comes from changes).

The cost is that a worker keeps its largest per-image working set (tens of MB) until it exits.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Any

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# 32 MB is glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2): blocks above it (an
# 8-megapixel float plane) still get their own mapping and go back to the system when freed.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024

_applied = False


def libc_function(name: str) -> Callable[..., Any] | None:
    """A function of the C library this process already runs on; None without glibc (musl, macOS).

    ``ctypes.CDLL(None)`` looks symbols up in the loaded process: instant, where
    ``ctypes.util.find_library`` runs ``ldconfig`` in a subprocess (~12 ms per call).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); False where there is no glibc."""
    global _applied
    if _applied:
        return True
    mallopt = libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    return _applied
