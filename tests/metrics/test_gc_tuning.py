"""Imports that live to the end of the process are kept off the garbage collector, and only there."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from metrics.gc_tuning import long_lived_imports

_WHOLE = """
import gc, sys
sys.path.insert(0, {repo!r})
from metrics.gc_tuning import long_lived_imports
before = gc.get_freeze_count()
with long_lived_imports(True):
    paused = not gc.isenabled()
    import json, decimal  # noqa: F401
print(paused, gc.isenabled(), before == 0 and gc.get_freeze_count() > 0)
gc.disable()
with long_lived_imports(True):
    pass
print(gc.isenabled())  # a collector the caller had paused stays paused
"""


def test_a_whole_process_imports_with_the_collector_paused_and_freezes_what_it_imported() -> None:
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", _WHOLE.format(repo=repo)], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["True", "True", "True", "False"], done.stderr


def test_inside_a_longer_lived_process_nothing_changes() -> None:
    frozen = gc.get_freeze_count()
    with long_lived_imports(False):
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
