"""store.project.fsyncs_at_end: atomic writes owe their fsyncs to the end of the block, then pay them all."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from store import project as project_module
from store.project import fsyncs_at_end, write_json_atomic, write_parquet_atomic


@pytest.fixture
def fsync_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every os.fsync, as the path of the descriptor it was given (threads included)."""
    calls: list[str] = []
    lock = threading.Lock()
    real = os.fsync

    def recording(fd: int) -> None:
        with lock:
            calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return calls


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_writes_in_the_block_are_synced_once_each_at_its_end(tmp_path: Path, fsync_calls: list[str]) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    (tmp_path / "metrics").mkdir()
    with fsyncs_at_end():
        write_parquet_atomic(tmp_path / "one.parquet", frame)
        write_json_atomic(tmp_path / "meta.json", {"k": 1})
        worker = threading.Thread(
            target=write_parquet_atomic, args=(tmp_path / "metrics" / "m.parquet", frame)
        )
        worker.start()
        worker.join()
        assert fsync_calls == []  # owed, not paid
        assert pd.read_parquet(tmp_path / "one.parquet").equals(frame)  # readers see whole files meanwhile
    files = {
        str(tmp_path / "one.parquet"),
        str(tmp_path / "meta.json"),
        str(tmp_path / "metrics" / "m.parquet"),
    }
    folders = {str(tmp_path), str(tmp_path / "metrics")}
    assert sorted(fsync_calls) == sorted(files | folders)  # each once, the folders after the files
    assert set(fsync_calls[:3]) == files

    fsync_calls.clear()
    write_parquet_atomic(tmp_path / "two.parquet", frame)  # outside the block: file and folder at once
    assert len(fsync_calls) == 2 and fsync_calls[1] == str(tmp_path)
    assert project_module._owed_fsyncs is None


def test_an_exception_pays_nothing_and_closes_the_block(tmp_path: Path, fsync_calls: list[str]) -> None:
    with pytest.raises(ValueError), fsyncs_at_end():
        write_json_atomic(tmp_path / "meta.json", {"k": 1})
        raise ValueError("import failed")
    assert fsync_calls == [] and project_module._owed_fsyncs is None
    with fsyncs_at_end():
        with fsyncs_at_end():  # joins the outer block
            write_json_atomic(tmp_path / "inner.json", {"k": 2})
        assert fsync_calls == []
    assert sorted(fsync_calls) == sorted([str(tmp_path / "inner.json"), str(tmp_path)])
