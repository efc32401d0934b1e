"""A dataset's images / objects / categories tables read from the store, for training and inference.

Reads the committed Parquet files directly (no DuckDB, no lock): a dataset folder only ever
appears whole, so a training job never sees a half-imported dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from store.errors import InputError
from store.project import Project, check_name

if TYPE_CHECKING:  # models.data imports torch: only the functions that return Frames need it
    from models.data import Frames


def require_project(project: Project) -> Project:
    """The project, or a one-line InputError when the folder is not a cocolens project."""
    if not project.exists():
        raise InputError(str(project.root), "not a cocolens project (no project.json)", field="--project")
    return project


def require_dataset(project: Project, name: str, flag: str = "--dataset") -> str:
    """`name` when the project has that dataset, else a one-line InputError naming `flag`."""
    check_name("dataset", name)
    datasets = project.datasets()
    if name not in datasets:
        raise InputError(
            str(project.root),
            f"no dataset {name!r} (the project has {', '.join(datasets) or 'none'})",
            field=flag,
        )
    return name


def dataset_frames(project: Project, name: str, flag: str = "--dataset") -> Frames:
    """The three tables of dataset `name`; only images with status 'ok' are later used by the models."""
    from models.data import Frames

    folder: Path = project.dataset_dir(require_dataset(project, name, flag))
    return Frames(
        pd.read_parquet(folder / "images.parquet"),
        pd.read_parquet(folder / "objects.parquet"),
        pd.read_parquet(folder / "categories.parquet"),
    )


def usable_images(frames: Frames) -> int:
    """How many images a model can read (status 'ok')."""
    images = frames.images
    if "status" in images.columns:
        return int((images["status"] == "ok").sum())
    return len(images)
