"""An import killed mid-way resumes with nothing lost or doubled; readers never see half an import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from store.queries import ProjectReader
from tests.conftest import REPO, import_argv, write_small_coco


def _big_dataset(folder: Path, n_images: int) -> tuple[Path, Path]:
    """Images large enough (1600×1200 noise JPEGs) that the import takes a few seconds."""
    import cv2

    images_dir, ann = write_small_coco(folder, n_images=2)
    coco = json.loads(ann.read_text())
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(1200, 1600, 3), dtype=np.uint8)
    images, annotations = [], []
    for image_id in range(n_images):
        name = f"big_{image_id}.jpg"
        pixels[:10, :10] = image_id % 255  # distinct files
        cv2.imwrite(str(images_dir / name), pixels)
        images.append({"id": image_id, "file_name": name, "width": 1600, "height": 1200})
        annotations.append(
            {
                "id": image_id + 1,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [10, 10, 100, 80],
                "area": 8000,
                "iscrowd": 0,
                "segmentation": [],
            }
        )
    coco.update(images=images, annotations=annotations)
    ann.write_text(json.dumps(coco))
    return images_dir, ann


def _import_command(images: Path, ann: Path, project: Path) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), *import_argv(images, ann, project, "big", "--quiet")]


def test_kill_during_import_then_resume(tmp_path):
    images, ann = _big_dataset(tmp_path / "src", n_images=96)
    project = tmp_path / "project"
    env = {**os.environ, "COCOLENS_IMPORT_CHUNK": "8"}
    proc = subprocess.Popen(
        _import_command(images, ann, project),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    staging = project / ".staging"
    deadline = time.time() + 120
    while time.time() < deadline:
        chunks = list(staging.glob("*/chunks/images_*.parquet")) if staging.exists() else []
        if len(chunks) >= 2:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / "datasets" / "big").exists(), "a killed import must not publish a partial dataset"
    reader = ProjectReader(project)
    assert reader.datasets() == []

    done = subprocess.run(
        _import_command(images, ann, project), env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((project / "datasets" / "big" / "dataset.json").read_text())
    assert meta["resumed_images"] >= 16, "the rerun must reuse the checkpoints of the killed run"
    images_table = pd.read_parquet(project / "datasets" / "big" / "images.parquet")
    assert len(images_table) == 96 and images_table["image_id"].is_unique
    assert (images_table["status"] == "ok").all()
    brightness = pd.read_parquet(project / "datasets" / "big" / "metrics" / "image__brightness.parquet")
    assert len(brightness) == 96 and brightness["image_id"].is_unique and brightness["value"].notna().all()
    assert not staging.exists() or not any(staging.iterdir())


def test_reader_keeps_working_while_a_writer_imports(tmp_path, small_coco):
    images, ann = small_coco
    project = tmp_path / "project"
    first = subprocess.run(
        _import_command(images, ann, project)[:-3] + ["--dataset", "one", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    reader = ProjectReader(project)
    big_images, big_ann = _big_dataset(tmp_path / "src2", n_images=40)
    proc = subprocess.Popen(
        _import_command(big_images, big_ann, project),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen_counts = set()
    reads = 0
    while reads == 0 or proc.poll() is None:  # at least one read, the first one while the writer starts
        counts = reader.dataset_counts()
        seen_counts.add(tuple(zip(counts["dataset"], counts["images"], strict=True)))
        assert reader.scalar("SELECT count(*) FROM objects WHERE dataset = 'one'") == 8
        reads += 1
    assert proc.wait() == 0, proc.stderr.read().decode()
    counts = reader.dataset_counts()
    assert dict(zip(counts["dataset"], counts["images"], strict=True)) == {"big": 40, "one": 4}
    # every state a reader saw was whole: before the import, or after it; and reads happened before
    # the commit (the writer is a new Python process: its import takes far longer than one read)
    assert (("one", 4),) in seen_counts
    assert seen_counts <= {(("one", 4),), (("big", 40), ("one", 4))}
