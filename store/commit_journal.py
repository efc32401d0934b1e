"""Several staged files made visible as one step: a journal of renames, rolled forward after a crash.

A pass that produces more than one file (the embeddings folder plus the metric files and duplicate
groups derived from it) writes everything into ``.staging`` first. :func:`commit_moves` then writes
``commit.json`` (the list of renames, paths relative to the project) and performs the renames, which
take milliseconds. A process killed before the journal exists leaves only staging (invisible, removed
by the next run); one killed during the renames leaves the journal, and the next writer
(:meth:`store.project.Project.writing` calls :func:`roll_forward`) finishes them. Readers therefore
see the old run or the new one, never a mix that survives a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from store.project import read_json_file, replace_dir_atomic, write_json_atomic

JOURNAL_NAME = "commit.json"


def _apply(root: Path, moves: list[list[str]]) -> None:
    for source_rel, target_rel in moves:
        source, target = root / source_rel, root / target_rel
        if not source.exists():
            continue  # renamed before the crash
        if source.is_dir():
            for trash in target.parent.glob(f".{target.name}.old-*"):  # a swap cut in half
                shutil.rmtree(trash, ignore_errors=True)
            replace_dir_atomic(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)


def commit_moves(root: Path, journal_dir: Path, moves: list[tuple[Path, Path]]) -> None:
    """Rename each staged ``source`` over its ``target`` (files or folders), all or (after a crash,
    once the next writer rolls forward) all. ``journal_dir`` is the stage the sources live in."""
    relative = [[os.path.relpath(s, root), os.path.relpath(t, root)] for s, t in moves]
    journal = journal_dir / JOURNAL_NAME
    write_json_atomic(journal, relative)
    _apply(root, relative)
    journal.unlink()


def discard_stage(stage: Path, staging_dir: Path) -> None:
    """Remove a pass's stage once it is committed or abandoned, and its parents up to ``staging_dir``
    when empty (other stages stay). A stage holding a journal is kept: the next writer finishes it."""
    if not (stage / JOURNAL_NAME).is_file():
        shutil.rmtree(stage, ignore_errors=True)
    for empty in (stage.parent, staging_dir):
        with contextlib.suppress(OSError):
            empty.rmdir()


def roll_forward(root: Path, staging_dir: Path) -> int:
    """Finish every commit a killed process left half done; returns how many were finished."""
    if not staging_dir.is_dir():
        return 0
    finished = 0
    for journal in sorted(staging_dir.rglob(JOURNAL_NAME)):
        moves = read_json_file(journal)
        _apply(root, moves)
        journal.unlink()
        shutil.rmtree(journal.parent, ignore_errors=True)
        finished += 1
    for folder in sorted(staging_dir.rglob("*"), key=lambda path: -len(path.parts)) + [staging_dir]:
        if folder.is_dir() and finished:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only empty ones: a killed import's chunks stay for its resume
    return finished
