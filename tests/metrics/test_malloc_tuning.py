"""The image pass's malloc tuning: freed per-photo buffers are reused, not mapped afresh each time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Per "photo", allocate and touch eight 2 MB planes together, then free them all (what each photo's
# decoded, grey and float planes do), 50 times, counting minor page faults: glibc gives the freed
# heap top back to the system (it is above the trim threshold), so each photo faults its pages in
# again.
_CHURN = """
import resource, sys
sys.path.insert(0, {repo!r})
import numpy as np
from metrics.malloc_tuning import keep_freed_memory
applied = keep_freed_memory() if {tuned} else False
planes = [np.ones(1 << 21, dtype=np.uint8) for _ in range(8)]
del planes
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    planes = [np.ones(1 << 21, dtype=np.uint8) for _ in range(8)]
    del planes
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(tuned: bool) -> tuple[bool, int]:
    code = _CHURN.format(repo=str(REPO), tuned=tuned)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_freed_buffers_are_reused_after_tuning() -> None:
    applied, tuned_faults = _page_faults(tuned=True)
    _, default_faults = _page_faults(tuned=False)
    assert applied
    # Default glibc: ~512 faults per 2 MB plane (400 planes → ~200k); tuned: the pages stay.
    assert default_faults > 100_000, default_faults
    assert tuned_faults < 2_000, tuned_faults


def test_tuning_is_idempotent() -> None:
    from metrics.malloc_tuning import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
