"""A folder of new photos as a dataset, so `cocolens predict` can show where a model fails on them.

Users often have no annotations for new photos: they only want to see a model's predictions. The
folder is imported as an images-only COCO dataset (no annotations; the categories are the model's,
so its predictions match them), through the ordinary importer: same checks, same image metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store.errors import InputError
from store.project import Project

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), by path; hidden files and folders are skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return found


def _displayed_size(path: Path) -> tuple[int, int] | None:
    """Width and height as a viewer shows the picture (EXIF rotation applied); None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def images_only_coco(folder: Path, categories: list[dict[str, Any]]) -> dict[str, Any]:
    """A COCO dict listing the folder's images (no annotations). Unreadable files are still listed
    (with size 1×1) so that the importer records them as broken images rather than dropping them."""
    images = []
    for image_id, path in enumerate(image_files(folder), start=1):
        size = _displayed_size(path) or (1, 1)
        images.append(
            {
                "id": image_id,
                "file_name": path.relative_to(folder).as_posix(),
                "width": size[0],
                "height": size[1],
            }
        )
    if not images:
        raise InputError(str(folder), f"no image files ({', '.join(IMAGE_SUFFIXES)})", field="--images")
    return {"images": images, "annotations": [], "categories": categories}


def import_image_folder(
    project: Project, folder: str | Path, dataset: str, categories: list[dict[str, Any]]
) -> dict[str, Any]:
    """Import `folder` as images-only dataset `dataset`; returns the importer's summary."""
    from store.coco_import import import_coco
    from store.project import write_json_atomic

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), "no such folder", field="--images")
    coco = images_only_coco(folder, categories)
    listing = project.jobs_dir / "predict" / f"{dataset}.images.json"
    listing.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(listing, coco)
    return import_coco(folder, listing, project.root, dataset=dataset, workers=2)


def checkpoint_categories(checkpoint: str | Path) -> list[dict[str, Any]]:
    """The COCO categories a cocolens checkpoint predicts (ids and names from its metadata)."""
    from models.predict import load_checkpoint_checked

    meta = load_checkpoint_checked(checkpoint, "cpu").meta
    names = meta.get("category_names") or {}
    ids = sorted({int(c) for c in meta["label_to_category"].values()})
    return [{"id": c, "name": str(names.get(str(c), c))} for c in ids]


def ensure_folder_dataset(
    project_root: str | Path, checkpoint: str | Path, folder: str | Path, dataset: str
) -> dict[str, Any] | None:
    """Import `folder` as `dataset` unless the project has it already (a rerun); returns the import
    summary, or None when nothing was imported."""
    project = Project(project_root)
    if project.root.exists() and dataset in project.datasets():
        return None
    return import_image_folder(project, folder, dataset, checkpoint_categories(checkpoint))
