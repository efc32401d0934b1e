"""One demo project (two generated datasets, three demo models) per test process, shared by the
model-page and model-query tests: building it takes tens of seconds, so it is built once."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=1)
def demo_project() -> Path:
    from store.demo import build_demo_project

    folder = Path(tempfile.mkdtemp(prefix="cocolens-demo-models-"))
    atexit.register(shutil.rmtree, folder, True)
    return build_demo_project(folder / "project")
