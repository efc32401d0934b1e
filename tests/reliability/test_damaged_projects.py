"""Damaged or unusual project folders give one line saying what is wrong and how to recover (issue 18).

Before: tracebacks for a project on a read-only file system, ``--project`` naming a regular file, a
truncated ``project.json``, a plugin in ``project.json`` that no longer exists and a truncated
``images.parquet``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import import_argv, write_small_coco
from tests.reliability.hostile import assert_refused, run_cli


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_small_coco(tmp_path_factory.mktemp("damaged_source"), n_images=2)


def _import_argv(source: tuple[Path, Path], project: Path, dataset: str = "d") -> list[str]:
    images, ann = source
    return import_argv(images, ann, project) + [
        "--dataset",
        dataset,
        "--quiet",
        "--workers",
        "1",
    ]


@pytest.fixture
def project(source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "project"
    code, _, err = run_cli(capsys, _import_argv(source, root))
    assert code == 0, err
    return root


def _results(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}]))
    return path


def test_project_naming_a_regular_file(source, tmp_path: Path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("not a project\n")
    for argv in (
        _import_argv(source, target),
        ["import", "predictions", str(_results(tmp_path)), "--project", str(target), "--model", "m"],
        ["report", "--project", str(target), "--json"],
        ["export", "csv", "--project", str(target), "--out", str(tmp_path / "o.csv"), "--level", "image"],
    ):
        assert_refused(capsys, argv, tmp_path, [str(target)])
    assert target.read_text() == "not a project\n"


def test_truncated_project_json(source, project: Path, capsys):
    meta = project / "project.json"
    meta.write_bytes(meta.read_bytes()[:7])
    err = assert_refused(capsys, _import_argv(source, project, "e"), project, ["project.json", "damaged"])
    assert "delete" in err


def test_plugin_in_project_json_that_no_longer_exists(source, project: Path, tmp_path: Path, capsys):
    meta = project / "project.json"
    data = json.loads(meta.read_text())
    data["plugins"] = [str(tmp_path / "gone_metrics.py")]
    meta.write_text(json.dumps(data))
    err = assert_refused(
        capsys, _import_argv(source, project, "e"), project, ["project.json", "gone_metrics.py"]
    )
    assert "plugins" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--json"],
        ["export", "csv", "--level", "image", "--out", "{tmp}/out.csv"],
        ["export", "coco", "--out", "{tmp}/out.json"],
        ["import", "predictions", "{tmp}/results.json", "--model", "m"],
    ],
    ids=["report", "export-csv", "export-coco", "import-predictions"],
)
def test_truncated_images_parquet(project: Path, tmp_path: Path, capsys, argv: list[str]):
    _results(tmp_path)
    table = project / "datasets" / "d" / "images.parquet"
    table.write_bytes(table.read_bytes()[:100])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--project", str(project)]
    err = assert_refused(capsys, argv, project, ["images.parquet"])
    assert "damaged" in err and "import" in err  # what to do: import the dataset again


@pytest.mark.parametrize(
    ("damaged", "argv"),
    [
        ("datasets/d/objects.parquet", ["report", "--json"]),
        ("datasets/d/objects.parquet", ["import", "predictions", "{tmp}/results.json", "--model", "m"]),
        ("datasets/d/metrics/object__object_area.parquet", ["report", "--json"]),
        ("datasets/d/dataset.json", ["import", "predictions", "{tmp}/results.json", "--model", "m"]),
        ("models/m/model.json", ["report", "--json"]),
    ],
    ids=[
        "objects-report",
        "objects-predictions",
        "metric-report",
        "dataset-json-predictions",
        "model-json-report",
    ],
)
def test_other_truncated_project_files(project: Path, tmp_path: Path, capsys, damaged: str, argv: list[str]):
    results = _results(tmp_path)
    code, _, err = run_cli(
        capsys, ["import", "predictions", str(results), "--project", str(project), "--model", "m"]
    )
    assert code == 0, err
    target = project / damaged
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--project", str(project)]
    err = assert_refused(capsys, argv, project, [Path(damaged).name, "damaged"])
    assert "again" in err  # how to rebuild it


# ----- read-only file system --------------------------------------------------------------------


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, a folder on it) of a tmpfs remounted read-only; skipped where mounts are not allowed."""
    mount = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount, mount / "project"
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _remount_read_only(mount: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")


def test_project_on_a_read_only_file_system(source, read_only_mount, tmp_path: Path, capsys):
    mount, project = read_only_mount
    code, _, err = run_cli(capsys, _import_argv(source, project))
    assert code == 0, err
    _remount_read_only(mount)
    for argv in (
        _import_argv(source, project, "e"),
        _import_argv(source, mount / "new_project"),
        ["import", "predictions", str(_results(tmp_path)), "--project", str(project), "--model", "m"],
    ):
        err = assert_refused(capsys, argv, mount, ["read-only"])
    code, out, err = run_cli(capsys, ["report", "--project", str(project), "--json"])
    assert code == 0, err  # reading needs no write access
    assert json.loads(out)["datasets"]["d"]["images"] == 2


@pytest.mark.parametrize("size", ["16k", "64k", "128k"])
def test_a_full_disk_during_an_import_is_one_line(source, read_only_mount, capsys, size: str):
    """A small tmpfs fills up at different points of the import (project.json, stage, tables)."""
    mount, project = read_only_mount
    done = subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot resize the tmpfs: {done.stderr.strip()}")
    code, _, err = run_cli(capsys, _import_argv(source, project))
    if code == 0:
        pytest.skip(f"the import fits in {size}")
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "disk is full" in err, err
    assert not (project / "datasets" / "d").exists()


@pytest.mark.parametrize("kind", ["csv", "coco"])
def test_a_full_disk_during_an_export_is_one_line(project: Path, read_only_mount, capsys, kind: str):
    mount, _ = read_only_mount
    done = subprocess.run(["mount", "-o", "remount,size=4k", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot resize the tmpfs: {done.stderr.strip()}")
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as handle:  # fill the disk to the last block
        try:
            while True:
                handle.write(b"\0" * 1024)
        except OSError:
            pass
    out = mount / f"out.{kind}"
    argv = ["export", kind, "--project", str(project), "--out", str(out)]
    argv += ["--level", "object"] if kind == "csv" else ["--dataset", "d"]
    assert_refused(capsys, argv, project, ["disk is full"])
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]  # nothing half-written left behind


@pytest.mark.parametrize(
    ("damaged", "advice"),
    [
        ("datasets/d/images.parquet", "cocolens import coco"),
        ("datasets/d/objects.parquet", "cocolens import coco"),
        ("datasets/d/metrics/image__brightness.parquet", "cocolens metrics"),
    ],
)
def test_the_app_names_a_damaged_file_in_one_line(project: Path, damaged: str, advice: str):
    """Before: the app showed DuckDB's 'No magic bytes found' traceback on every page."""
    from streamlit.testing.v1 import AppTest

    from tests.reliability.guarded import REPO

    target = project / damaged
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.session_state["project"] = str(project)
    app.run()
    assert not app.exception, app.exception
    [error] = [e.value for e in app.error]
    assert str(target) in error and "damaged" in error and advice in error
    assert "\n" not in error
