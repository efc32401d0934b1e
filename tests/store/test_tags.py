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


def test_rename_merges_and_delete_removes_everywhere(tmp_path: Path) -> None:
    from store.tags import delete_tag, rename_tag

    add_tags(tmp_path, "a", [0, 1], None, "revew")
    add_tags(tmp_path, "a", [1], [10], "revew")
    add_tags(tmp_path, "a", [1, 2], None, "review")
    assert rename_tag(tmp_path, "revew", "review") == 3  # items renamed; image 1 had both: merged
    assert all_tags(tmp_path) == ["review"]
    assert tag_counts(tmp_path).set_index("tag").loc["review"].tolist() == [3, 1]
    assert tags_of(tmp_path, "a", 1, 10) == ["review"]
    assert delete_tag(tmp_path, "review") == 4
    assert all_tags(tmp_path) == [] and delete_tag(tmp_path, "review") == 0


def test_cli_tag_and_untag_print_how_many_changed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`cocolens tag/untag --where`: images (default) or objects, optionally one dataset."""
    from cli import main
    from store.coco_import import import_coco
    from tests.conftest import write_small_coco

    root = tmp_path / "p"
    for name, seed in (("a", 0), ("b", 1)):
        images, ann = write_small_coco(tmp_path / name, n_images=4, seed=seed)
        import_coco(images, ann, root, dataset=name, workers=1)

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert main([*argv, "--project", str(root)]) == 0
        return capsys.readouterr().out.strip()

    assert run("tag", "--name", "low", "--where", "image_id < 2") == (
        "tagged 4 images with 'low' (0 of 4 matching already had it)"
    )
    assert run("tag", "--name", "low", "--where", "image_id < 3", "--dataset", "a") == (
        "tagged 1 image with 'low' (2 of 3 matching already had it)"
    )
    assert len(tagged(root, "low")) == 5
    assert run("tag", "--name", "reds", "--where", "category = 'red'", "--level", "object") == (
        "tagged 8 objects with 'reds' (0 of 8 matching already had it)"
    )
    assert tagged(root, "reds")["object_id"].notna().all()
    assert run("untag", "--name", "low", "--where", "has_tag('low') AND dataset = 'b'") == (
        "untagged 2 images ('low' removed; 2 matching)"
    )
    assert set(tagged(root, "low")["dataset"]) == {"a"}
    capsys.readouterr()
    assert main(["untag", "--project", str(root), "--name", "x", "--where", "nope > 1"]) == 2
    assert "unknown column 'nope'" in capsys.readouterr().err


def test_card_buttons_toggle_and_tag_all_through_one_store_function(tmp_path: Path) -> None:
    """What every card's tag button and every "tag all" loop call: tagged_keys, toggle, apply_keys."""
    import pandas as pd

    from store.tags import apply_keys, tagged_keys, toggle

    image, obj = ("a", 1, None), ("a", 1, 10)
    assert toggle(tmp_path, image, "review", present=False) == 1
    assert toggle(tmp_path, obj, "review", present=False) == 1
    assert tagged_keys(tmp_path, "review") == {image, obj}  # the image and its object stay distinct
    assert toggle(tmp_path, image, "review", present=True) == 1
    assert toggle(tmp_path, image, "review", present=True) == 0  # another session removed it first
    assert tagged_keys(tmp_path, "review") == {obj}
    keys = pd.DataFrame({"dataset": ["a", "b"], "image_id": [1, 2], "object_id": [10, None]})
    assert apply_keys(tmp_path, keys, "review", "add") == 1  # ("a", 1, 10) already had it
    assert tagged_keys(tmp_path, "review") == {obj, ("b", 2, None)}
    assert apply_keys(tmp_path, keys, "review", "remove") == 2
    assert tagged_keys(tmp_path, "review") == set()
    with pytest.raises(ValueError, match="'add' or 'remove'"):
        apply_keys(tmp_path, keys, "review", "toggle")  # type: ignore[arg-type]
