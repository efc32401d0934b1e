"""A writer's phases do not stack their memory: the prewarm's DuckDB buffer pool is capped."""

from __future__ import annotations

from pathlib import Path

from store import page_summaries
from store.queries import ProjectReader


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
