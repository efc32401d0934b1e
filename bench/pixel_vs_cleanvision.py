"""Side by side: ``cocolens import coco`` vs cleanvision ``Imagelab.find_issues`` on one photo folder.

Makes a folder of N real photos (default 200): the ``blood_cells`` microscope photos upscaled from
416 px to 624 px and the ``fruits_nuts`` photos at their own 800×600 (JPEG quality 90, with a COCO
file whose boxes and polygons are scaled alike), then runs, alternating, each tool as a whole
process from a cold start, as a user would:

(a) ``python cli.py import coco --images DIR --annotations FILE --project TMP --quiet`` — every
    image read once, content/pixel hashes, pHash, 16 image metrics, all label metrics, duplicates,
    Parquet tables, page summaries;
(b) ``python -c "from cleanvision import Imagelab; Imagelab(data_path=DIR).find_issues()"`` — its
    default issue checks (dark, light, blurry, low information, odd aspect ratio, odd size,
    grayscale, exact and near duplicates).

After one untimed run of each (photos in the page cache, bytecode caches written, as on any
second run), wall time and the CPU time (user + system) of the process and its children are
printed per run, and the ratio of medians. cleanvision is a yardstick only: ``pip install cleanvision`` into the
environment that runs this; it is not a cocolens dependency.

Run:  .venv/bin/python bench/pixel_vs_cleanvision.py [--images 200] [--repeats 3] [--keep DIR]
Target (issue 17): cocolens ≥ 3× faster than cleanvision (wall, median).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _common import counts_parser, import_coco_args, run_timed, user_environment

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
SOURCES = (("blood_cells", 1.5), ("fruits_nuts", 1.0))  # (set, scale factor)


def make_folder(folder: Path, count: int) -> Path:
    """Write ``count`` photos and their COCO file into ``folder`` (reused when already there)."""
    from PIL import Image

    ann_path = folder / "annotations.json"
    images_dir = folder / "images"
    if ann_path.is_file() and len(list(images_dir.glob("*.jpg"))) == count:
        return ann_path
    shutil.rmtree(folder, ignore_errors=True)
    images_dir.mkdir(parents=True)
    images, annotations, categories = [], [], {}
    picked = []
    for name, scale in SOURCES:
        coco = json.loads((DATA / name / "annotations.json").read_text())
        by_image: dict[int, list] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for cat in coco["categories"]:
            categories[(name, cat["id"])] = cat["name"]
        picked += [(name, scale, record, by_image.get(record["id"], [])) for record in coco["images"]]
    picked.sort(key=lambda item: item[0] != "fruits_nuts")  # all 18 fruits_nuts photos, then cells
    cat_ids = {key: k + 1 for k, key in enumerate(sorted(categories))}
    for image_id, (name, scale, record, anns) in enumerate(picked[:count]):
        with Image.open(DATA / name / "images" / record["file_name"]) as photo:
            width, height = round(photo.width * scale), round(photo.height * scale)
            photo.convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(
                images_dir / f"{image_id:04d}.jpg", quality=90
            )
        images.append({"id": image_id, "file_name": f"{image_id:04d}.jpg", "width": width, "height": height})
        for ann in anns:
            seg = ann.get("segmentation") or []
            if isinstance(seg, list):
                seg = [[v * scale for v in ring] for ring in seg]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[(name, ann["category_id"])],
                    "bbox": [v * scale for v in ann["bbox"]],
                    "area": ann.get("area", 0) * scale * scale,
                    "iscrowd": ann.get("iscrowd", 0),
                    "segmentation": seg,
                }
            )
    cats = [{"id": cid, "name": f"{key[0]}:{categories[key]}"} for key, cid in cat_ids.items()]
    ann_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return ann_path


def timed(command: list[str]) -> dict:
    """Run a command to completion; wall seconds and CPU seconds of it and its children."""
    done, times = run_timed(command, REPO, user_environment())
    if done.returncode:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return times


def cocolens_command(images: Path, ann: Path, project: Path) -> list[str]:
    shutil.rmtree(project, ignore_errors=True)
    return [
        sys.executable,
        str(REPO / "cli.py"),
        *import_coco_args(images, ann, project, "photos"),
        "--quiet",
    ]


def cleanvision_command(images: Path) -> list[str]:
    code = (
        "import logging, warnings; warnings.filterwarnings('ignore'); "
        "from cleanvision import Imagelab; "
        f"lab = Imagelab(data_path={str(images)!r}); lab.find_issues(verbose=False); "
        "print(len(lab.issues))"
    )
    return [sys.executable, "-c", code]


def main() -> None:
    parser = counts_parser(__doc__.splitlines()[0], images=200, repeats=3)
    parser.add_argument("--keep", help="folder for the generated photos (reused when run again)")
    args = parser.parse_args()
    try:
        import cleanvision  # noqa: F401
    except ImportError:
        raise SystemExit(
            "cleanvision is not installed: .venv/bin/python -m pip install cleanvision"
        ) from None
    with tempfile.TemporaryDirectory(prefix="cocolens-cv-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        ann = make_folder(base / f"photos_{args.images}", args.images)
        images = ann.parent / "images"
        # one untimed run of each first: photos in the page cache and bytecode cached, as on a
        # user's second run (cleanvision's modules come precompiled by pip; ours compile on first use)
        timed(cocolens_command(images, ann, Path(tmp) / "project"))
        timed(cleanvision_command(images))
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        runs: dict[str, list[dict]] = {"cocolens": [], "cleanvision": []}
        for repeat in range(args.repeats):  # alternating, so load from other processes hits both alike
            for tool in ("cocolens", "cleanvision") if repeat % 2 == 0 else ("cleanvision", "cocolens"):
                if tool == "cocolens":
                    result = timed(cocolens_command(images, ann, Path(tmp) / "project"))
                else:
                    result = timed(cleanvision_command(images))
                runs[tool].append(result)
                print(
                    f"{tool:12s} run {repeat + 1}: wall {result['wall']:6.2f} s   user {result['user']:6.2f} s"
                    f"   sys {result['sys']:5.2f} s   load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        median = {tool: statistics.median(r["wall"] for r in rs) for tool, rs in runs.items()}
        cpu = {tool: statistics.median(r["user"] + r["sys"] for r in rs) for tool, rs in runs.items()}
        print(f"photos: {args.images} JPEG (blood_cells ×1.5 = 624 px, fruits_nuts 800×600)")
        print(f"median wall: cocolens {median['cocolens']:.2f} s, cleanvision {median['cleanvision']:.2f} s")
        print(
            f"median CPU (user+sys): cocolens {cpu['cocolens']:.2f} s, cleanvision {cpu['cleanvision']:.2f} s"
        )
        print(
            f"ratio cleanvision/cocolens: wall {median['cleanvision'] / median['cocolens']:.2f}×, "
            f"CPU {cpu['cleanvision'] / cpu['cocolens']:.2f}×  (target ≥ 3× wall)"
        )
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
