"""A multi-file pass killed mid-way: readers keep the old run, the next writer finishes the new one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from store import embedding_store as es
from store.coco_import import import_coco
from store.commit_journal import JOURNAL_NAME, commit_moves, roll_forward
from store.project import Project
from tests.conftest import write_small_coco

REPO = Path(__file__).resolve().parents[2]


def test_commit_moves_files_and_folders_and_leaves_no_journal(tmp_path: Path) -> None:
    stage = tmp_path / ".staging" / "x"
    (stage / "folder").mkdir(parents=True)
    (stage / "folder" / "a.txt").write_text("new folder")
    (stage / "b.txt").write_text("new file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("old folder")
    commit_moves(
        tmp_path,
        stage,
        [(stage / "b.txt", tmp_path / "out" / "b.txt"), (stage / "folder", tmp_path / "folder")],
    )
    assert (tmp_path / "out" / "b.txt").read_text() == "new file"
    assert (tmp_path / "folder" / "a.txt").read_text() == "new folder"
    assert not (stage / JOURNAL_NAME).exists()
    assert not list(tmp_path.glob(".folder.old-*"))


def test_roll_forward_finishes_a_half_done_commit(tmp_path: Path) -> None:
    stage = tmp_path / ".staging" / "x"
    stage.mkdir(parents=True)
    (tmp_path / "one.txt").write_text("new one")  # renamed before the crash
    (stage / "two.txt").write_text("new two")  # not yet
    (tmp_path / "two.txt").write_text("old two")
    (stage / JOURNAL_NAME).write_text(
        json.dumps([[".staging/x/one.txt", "one.txt"], [".staging/x/two.txt", "two.txt"]])
    )
    assert roll_forward(tmp_path, tmp_path / ".staging") == 1
    assert (tmp_path / "one.txt").read_text() == "new one" and (tmp_path / "two.txt").read_text() == "new two"
    assert not stage.exists()
    assert roll_forward(tmp_path, tmp_path / ".staging") == 0


_KILLER = """
import os, signal, sys
import numpy as np, pandas as pd
sys.path.insert(0, {repo!r})
import store.commit_journal as cj
from store import embedding_store as es

calls = {{"n": 0, "armed": False}}
real_replace, real_journal = os.replace, cj.write_json_atomic
def journal_then_arm(path, obj):
    real_journal(path, obj)
    calls["armed"] = True  # from here on every rename is one of the commit's
def replace_then_die(source, target):
    real_replace(source, target)
    calls["n"] += calls["armed"]
    if calls["n"] == {after}:
        os.kill(os.getpid(), signal.SIGKILL)
cj.write_json_atomic = journal_then_arm
os.replace = replace_then_die
root, dataset = {root!r}, "small"
objects = pd.read_parquet(os.path.join(root, "datasets", dataset, "objects.parquet"))
rng = np.random.default_rng(1)
es.store_embeddings(root, dataset, np.arange(5), rng.normal(size=(5, 8)),
                    objects[["image_id", "object_id"]], rng.normal(size=(len(objects), 8)), {{"backbone": "new"}})
"""


def _store(root: Path, backbone: str, seed: int) -> None:
    objects = pd.read_parquet(root / "datasets" / "small" / "objects.parquet")
    rng = np.random.default_rng(seed)
    es.store_embeddings(
        root,
        "small",
        np.arange(5),
        rng.normal(size=(5, 8)),
        objects[["image_id", "object_id"]],
        rng.normal(size=(len(objects), 8)),
        {"backbone": backbone},
    )


def _visible(root: Path) -> dict[str, object]:
    folder = root / "datasets" / "small"
    quality = pd.read_parquet(folder / "metrics" / "object__annotation_quality.parquet")["value"]
    return {"backbone": es.load_meta(root, "small")["backbone"], "quality": quality.round(9).tolist()}


@pytest.mark.parametrize("after", [1, 3])
def test_kill_9_during_the_commit_is_rolled_forward_by_the_next_writer(tmp_path: Path, after: int) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=5)
    root = tmp_path / "p"
    import_coco(images, annotations, root, dataset="small")
    _store(root, "old", seed=0)
    script = _KILLER.format(repo=str(REPO), root=str(root), after=after)
    done = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    journals = list((root / ".staging").rglob(JOURNAL_NAME))
    assert len(journals) == 1, "the killed commit left its journal"
    with Project(root).writing():
        pass  # the next writer (any command) finishes the renames before it does anything else
    assert not (root / ".staging").exists() or not list((root / ".staging").rglob("*"))
    finished = _visible(root)
    _store(root, "new", seed=1)  # the same run, uninterrupted
    assert finished == _visible(root)
    assert finished["backbone"] == "new"


def test_kill_9_before_the_commit_leaves_the_old_run_byte_identical(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=5)
    root = tmp_path / "p"
    import_coco(images, annotations, root, dataset="small")
    _store(root, "old", seed=0)
    before = {p: p.read_bytes() for p in (root / "datasets").rglob("*") if p.is_file()}
    script = _KILLER.format(repo=str(REPO), root=str(root), after=1).replace(
        "os.replace = replace_then_die",
        "es.np.save = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)",
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    after = {p: p.read_bytes() for p in (root / "datasets").rglob("*") if p.is_file()}
    assert after == before
    _store(root, "new", seed=1)  # the next run removes the dead stage and commits
    assert not list((root / ".staging").rglob("*")) if (root / ".staging").exists() else True
    assert os.path.isdir(root / "datasets" / "small" / "embeddings")
