"""Where each record's file is, with one listing per folder, and the records the image pass reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store.image_paths import image_pass_records, resolve_image_path, resolve_image_paths


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_each_name_resolves_as_the_per_file_rule_does_and_absent_files_are_known_missing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "here.jpg").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(b"x")
    (root / "escape").symlink_to(tmp_path / "outside")
    os.mkfifo(root / "pipe.jpg")
    names = ["sub/here.jpg", "sub/gone.jpg", "escape/secret.jpg", "pipe.jpg", "nofolder/gone.jpg"]
    resolved, missing = resolve_image_paths(root.resolve(), names)
    assert resolved[0] == (str(root.resolve() / "sub" / "here.jpg"), "")
    assert resolved[1] == (str(root.resolve() / "sub" / "gone.jpg"), "") and missing.tolist()[1]
    assert resolved[2][0] == "" and "symlink escape" in resolved[2][1]
    assert resolved[3][0] == "" and "not a regular file" in resolved[3][1]
    assert missing.tolist() == [False, True, False, False, True]
    # the listing's answer for absent files is the path the per-file rule gives
    assert resolved == [resolve_image_path(root.resolve(), name) for name in names]

    records = image_pass_records(resolved, [64] * 5, [48] * 5, missing.tolist())
    assert records[1] == {
        "path": str(root.resolve() / "sub" / "gone.jpg"),
        "width": 64,
        "height": 48,
        "escape_error": "",
        "known_missing": True,
    }
    assert [r["escape_error"] != "" for r in records] == [False, False, True, True, False]
