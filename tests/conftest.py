"""Shared fixtures: the real data folder and small COCO datasets made on the fly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# Property tests draw the same examples on every run, so CI cannot fail on a draw nobody can
# reproduce; HYPOTHESIS_PROFILE=explore draws new ones (and keeps failures in .hypothesis/).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared(*parts: str) -> Path:
    """Path inside ../shared/data, skipping the test when the real data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (tests use ../shared/data beside the repo)")
    return path


def write_small_coco(folder: Path, n_images: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """A tiny valid dataset: JPEG images with squares, polygons matching them. Returns (images, json)."""
    import cv2

    rng = np.random.default_rng(seed)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for image_id in range(n_images):
        width, height = 160, 120
        pixels = np.full((height, width, 3), 90 + 30 * image_id, np.uint8)
        for k in range(2):
            x, y = int(rng.integers(5, 90)), int(rng.integers(5, 60))
            size = int(rng.integers(15, 40))
            pixels[y : y + size, x : x + size] = (200, 40 * k, 30)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1 + k,
                    "bbox": [x, y, size, size],
                    "area": size * size,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + size, y, x + size, y + size, x, y + size]],
                }
            )
            ann_id += 1
        name = f"img_{image_id}.jpg"
        cv2.imwrite(str(images_dir / name), pixels)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "orange"}],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco))
    return images_dir, path


@pytest.fixture
def small_coco(tmp_path: Path) -> tuple[Path, Path]:
    return write_small_coco(tmp_path / "src")


def import_argv(
    images: Path, annotations: Path, project: Path, dataset: str | None = None, *extra: str
) -> list[str]:
    """The arguments of ``cocolens import coco`` (for cli.main, run_cli or a subprocess), one place."""
    argv = [
        "import",
        "coco",
        "--images",
        str(images),
        "--annotations",
        str(annotations),
        "--project",
        str(project),
    ]
    if dataset is not None:
        argv += ["--dataset", dataset]
    return [*argv, *extra]


def cli_import(
    images: Path, annotations: Path, project: Path, dataset: str | None = None, *extra: str
) -> Path:
    """Import through the CLI entry point (``cli.main``, quietly), asserting it succeeds; returns the project."""
    from cli import main

    argv = import_argv(images, annotations, project, dataset, "--quiet", *extra)
    assert main(argv) == 0, argv
    return Path(project)


def imported_small(folder: Path, n_images: int, *extra: str) -> Path:
    """:func:`write_small_coco` under ``folder/src`` imported through the CLI as dataset ``small`` into
    ``folder/project`` (``extra``: more import flags); returns the project."""
    images, ann = write_small_coco(folder / "src", n_images=n_images)
    return cli_import(images, ann, folder / "project", "small", *extra)


@pytest.fixture(scope="module")
def small_coco_document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """:func:`write_small_coco`'s annotations as a dict (4 images), for tests that mutate a deep copy."""
    _, ann = write_small_coco(tmp_path_factory.mktemp("small_coco"))
    return json.loads(ann.read_text())


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset ``small`` (5 images, 10 objects) imported through the CLI; shared by a module: read only."""
    return imported_small(tmp_path_factory.mktemp("small_project"), 5)


@pytest.fixture(scope="module")
def fruits_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """../shared/data/fruits_nuts imported as dataset ``fruits`` (skipped without the data); per module, read only."""
    from store.coco_import import import_coco

    data = shared("fruits_nuts")
    root = tmp_path_factory.mktemp("fruits") / "project"
    import_coco(data / "images", data / "annotations.json", root, dataset="fruits", workers=1)
    return root
