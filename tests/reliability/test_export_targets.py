"""``export --out`` cannot overwrite the project or replace what is not a regular file (issue 18, item 5).

Before: ``export csv --out PROJECT/datasets/D/images.parquet`` and ``export coco --out
PROJECT/project.json`` succeeded and corrupted the project; a character device named by ``--out``
was replaced by a regular file (as root, ``--out /dev/null`` would replace the real one).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import cli_import, write_small_coco
from tests.reliability.hostile import assert_refused, run_cli, snapshot


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export_targets")
    images, ann = write_small_coco(folder, n_images=2)
    root = folder / "project"

    cli_import(images, ann, root, "d", "--workers", "1")
    return root


def _export(kind: str, project: Path, out: Path) -> list[str]:
    if kind == "csv":
        return ["export", "csv", "--project", str(project), "--out", str(out), "--level", "image"]
    return ["export", "coco", "--project", str(project), "--out", str(out), "--dataset", "d"]


@pytest.mark.parametrize("kind", ["csv", "coco"])
@pytest.mark.parametrize("target", ["datasets/d/images.parquet", "project.json", "new.json", "."])
def test_out_inside_the_project_is_refused(project: Path, capsys, kind: str, target: str):
    assert_refused(capsys, _export(kind, project, project / target), project, ["--out", "inside the project"])


@pytest.mark.parametrize("kind", ["csv", "coco"])
def test_out_that_is_a_fifo_or_a_folder_is_refused(project: Path, tmp_path: Path, capsys, kind: str):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for out in (fifo, tmp_path):
        assert_refused(capsys, _export(kind, project, out), project, ["--out", "not a regular file"])
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_out_that_is_a_character_device_is_left_alone(project: Path, tmp_path: Path, capsys):
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a second /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs root")
    before = snapshot(project)
    for kind in ("csv", "coco"):
        code, _, err = run_cli(capsys, _export(kind, project, device))
        assert code == 2 and "not a regular file" in err, err
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert snapshot(project) == before


def test_a_regular_file_or_a_new_path_outside_is_fine(project: Path, tmp_path: Path, capsys):
    existing = tmp_path / "old.csv"
    existing.write_text("old\n")
    for out in (existing, tmp_path / "new.csv"):
        code, _, err = run_cli(capsys, _export("csv", project, out))
        assert code == 0, err
        assert out.read_text().startswith("dataset")
