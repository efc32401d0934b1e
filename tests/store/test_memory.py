"""A writer's phases do not stack their memory: freed frames go back to the OS, DuckDB is capped."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import page_summaries
from store.memory import release_freed_memory
from store.queries import ProjectReader


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read the RSS")
def test_freed_small_objects_go_back_to_the_os() -> None:
    release_freed_memory()
    before = _rss_mb()
    floats = [float(i) for i in range(4_000_000)]  # ~130 MB of small objects on glibc's heap
    grown = _rss_mb()
    del floats
    release_freed_memory()
    assert grown - before > 80
    assert _rss_mb() - before < 0.25 * (grown - before)


def test_the_prewarm_reader_caps_duckdb_memory(small_project: Path, monkeypatch) -> None:
    seen: list[str] = []

    class Recording(ProjectReader):
        def __init__(self, root, memory_limit=None):
            super().__init__(root, memory_limit)
            value = self.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0]
            seen.append(value)

    monkeypatch.setattr(page_summaries, "ProjectReader", Recording)
    page_summaries.prewarm(small_project)
    [limit] = seen
    assert limit.endswith("MiB") and float(limit.split()[0]) < 600  # "488.2 MiB", not 80% of RAM
