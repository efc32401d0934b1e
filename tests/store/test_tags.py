"""Tags: bulk add/remove, lookups, and two processes tagging at once without losing anything."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from store.errors import InputError
from store.tags import add_tags, all_tags, remove_tags, tag_counts, tagged, tags_of


def test_image_and_object_tags_are_separate(tmp_path: Path) -> None:
    assert add_tags(tmp_path, "a", [0, 1, 1], None, "review") == 2  # duplicates are ignored
    assert add_tags(tmp_path, "a", [1, 1], [10, 11], "review") == 2
    assert add_tags(tmp_path, "a", [1], [10], "wrong_class") == 1
    assert tags_of(tmp_path, "a", 1) == ["review"]
    assert tags_of(tmp_path, "a", 1, 10) == ["review", "wrong_class"]
    assert tags_of(tmp_path, "b", 1) == []
    assert all_tags(tmp_path) == ["review", "wrong_class"]
    frame = tagged(tmp_path, "review")
    assert frame[["image_id"]].to_numpy().ravel().tolist() == [0, 1, 1, 1]
    assert frame["object_id"].isna().sum() == 2
    counts = tag_counts(tmp_path).set_index("tag")
    assert counts.loc["review", "images"] == 2 and counts.loc["review", "objects"] == 2
    assert remove_tags(tmp_path, "a", [1], [10], "review") == 1
    assert remove_tags(tmp_path, "a", [0], None, "review") == 1
    assert tags_of(tmp_path, "a", 1, 10) == ["wrong_class"]
    assert tags_of(tmp_path, "a", 0) == []
    mode = sqlite3.connect(tmp_path / "tags.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_no_database_before_first_tag(tmp_path: Path) -> None:
    assert all_tags(tmp_path) == [] and len(tagged(tmp_path, "x")) == 0
    assert not (tmp_path / "tags.sqlite").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="valid tag"):
        add_tags(tmp_path, "a", [1], None, "  ")
    with pytest.raises(InputError, match="object ids"):
        add_tags(tmp_path, "a", [1, 2], [3], "t")


def _tag_many(root: str, start: int, barrier) -> None:
    barrier.wait()
    for chunk in range(start, start + 500, 10):  # 50 small transactions, interleaving with the other process
        add_tags(root, "ds", list(range(chunk, chunk + 10)), list(range(chunk, chunk + 10)), "shared")


def test_two_processes_tagging_at_once_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_tag_many, args=(str(tmp_path), start, barrier)) for start in (0, 500)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    frame = tagged(tmp_path, "shared")
    assert len(frame) == 1000
    assert sorted(frame["object_id"].tolist()) == list(range(1000))
