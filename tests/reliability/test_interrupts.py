"""Interrupts (issue 18, item 8): Ctrl-C is one line, stale stages are cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write_small_coco
from tests.reliability.guarded import REPO
from tests.reliability.hostile import jpeg_bytes, run_cli, snapshot


def _many_images(folder: Path, count: int) -> tuple[Path, Path]:
    images = folder / "images"
    images.mkdir(parents=True)
    records = []
    for i in range(count):
        (images / f"{i}.jpg").write_bytes(jpeg_bytes(640, 480, seed=i))
        records.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
    ann = folder / "ann.json"
    ann.write_text(json.dumps({"images": records, "annotations": [], "categories": [{"id": 1, "name": "t"}]}))
    return images, ann


def test_ctrl_c_during_the_image_pass_is_one_line(tmp_path: Path):
    """SIGINT to the whole process group, as a terminal sends it: workers used to print tracebacks."""
    images, ann = _many_images(tmp_path, 400)
    project = tmp_path / "project"
    argv = [sys.executable, "-m", "cli", "import", "coco", "--images", str(images), "--annotations", str(ann)]
    argv += ["--project", str(project), "--dataset", "d", "--quiet", "--workers", "2"]
    env = {**os.environ, "COCOLENS_IMPORT_CHUNK": "8"}
    child = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((project / ".staging").glob("d-*/chunks/images_*.parquet")):
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        os.killpg(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, (child.returncode, err[-3000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert not (project / "datasets" / "d").exists()  # nothing half-imported is visible


def test_a_stage_left_for_an_edited_annotations_file_is_removed(tmp_path: Path, capsys):
    images, ann = write_small_coco(tmp_path / "src", n_images=2)
    project = tmp_path / "project"
    argv = ["import", "coco", "--images", str(images), "--annotations", str(ann), "--project", str(project)]
    argv += ["--dataset", "d", "--quiet", "--workers", "1"]
    assert run_cli(capsys, argv)[0] == 0
    # what `kill -9` during an import of an earlier version of the file leaves behind
    stale = project / ".staging" / "d-0123456789abcdef" / "chunks"
    stale.mkdir(parents=True)
    (stale / "images_000000.parquet").write_bytes(b"partial")
    other = project / ".staging" / "d-two-0123456789abcdef"  # another dataset's stage stays
    other.mkdir()
    coco = json.loads(ann.read_text())
    coco["annotations"] = coco["annotations"][:1]  # the file was edited since
    ann.write_text(json.dumps(coco))
    code, _, err = run_cli(capsys, argv)
    assert code == 0, err
    assert not (project / ".staging" / "d-0123456789abcdef").exists()
    assert other.exists()
    assert "d-0123456789abcdef" not in json.dumps(snapshot(project))
