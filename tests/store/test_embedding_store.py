"""Embeddings in the store: `cocolens metrics --embeddings` on fruits_nuts with 10 % of labels swapped
(files, shapes, metric files, label errors ranked first, unchanged re-run skipped), missing and broken
images, duplicate groups kept beside the other kinds, and the app's queries (map, more like this)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from metrics import registry
from store import embedding_store as es
from store.coco_import import import_coco
from store.project import Project
from store.queries import ProjectReader
from tests.conftest import import_argv, shared, write_small_coco
from tests.metrics.test_embeddings import rank_figures, swap_labels

DATASET = "fruits_swapped"


def run_cli(*argv: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(list(argv)) == 0
    return json.loads(out.getvalue())


def swapped_fruits(folder: Path) -> tuple[Path, Path, set[int]]:
    """fruits_nuts annotations with 10 % of the labels swapped; returns (images, json, swapped ids)."""
    source = shared("fruits_nuts")
    coco = json.loads((source / "annotations.json").read_text())
    labels = np.array([a["category_id"] for a in coco["annotations"]])
    swapped = swap_labels(labels, 0.10, seed=0)
    for annotation, label in zip(coco["annotations"], labels, strict=True):
        annotation["category_id"] = int(label)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DATASET}.json"
    path.write_text(json.dumps(coco))
    return source / "images", path, {int(coco["annotations"][i]["id"]) for i in swapped}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("emb")
    images, annotations, swapped = swapped_fruits(root / "src")
    project = root / "project"
    import_coco(images, annotations, project, dataset=DATASET)
    started = time.perf_counter()
    summary = run_cli("metrics", "--project", str(project), "--embeddings")
    print(f"cocolens metrics --embeddings on 165 crops: {time.perf_counter() - started:.1f} s")
    return {"project": project, "swapped": swapped, "summary": summary}


def _metric(project: Path, level: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / DATASET / "metrics" / f"{level}__{name}.parquet")


def test_cli_stores_vectors_ids_and_meta(embedded: dict) -> None:
    project = embedded["project"]
    done = embedded["summary"]["datasets"][DATASET]["embeddings"]
    assert (done["images"], done["objects"]) == (18, 165)
    folder = project / "datasets" / DATASET / "embeddings"
    names = {"images.npy", "objects.npy", "images_ids.parquet", "objects_ids.parquet"}
    assert names | {"meta.json", "label_suggestions.parquet"} <= {p.name for p in folder.iterdir()}
    images = np.load(folder / "images.npy", allow_pickle=False)
    objects = np.load(folder / "objects.npy", allow_pickle=False)
    assert images.shape == (18, 1280) and objects.shape == (165, 1280)
    assert images.dtype == np.float32 and objects.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(objects, axis=1), 1.0, atol=1e-4)
    stored = pd.read_parquet(project / "datasets" / DATASET / "objects.parquet")
    ids = pd.read_parquet(folder / "objects_ids.parquet")
    assert list(ids.columns) == ["image_id", "object_id"]
    assert set(map(tuple, ids.to_numpy())) == set(map(tuple, stored[["image_id", "object_id"]].to_numpy()))
    assert sorted(pd.read_parquet(folder / "images_ids.parquet")["image_id"]) == list(range(18))  # ids from 0
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["backbone"] == "mobilenet_v2" and meta["weights_file"] == "mobilenet_v2-b0353104.pth"
    assert (meta["image_size"], meta["crop_size"], meta["dim"]) == (224, 128, 1280) and meta["created"]
    assert not (project / ".staging").exists()  # the stage is gone after the rename


def test_metric_files_counts_versions_and_ranges(embedded: dict) -> None:
    project = embedded["project"]
    for level, name, count in (
        ("object", "annotation_quality", 165),
        ("object", "label_confidence", 165),
        ("image", "image_uniqueness", 18),
    ):
        frame = _metric(project, level, name)
        assert len(frame) == count and frame["value"].notna().all(), name
        assert frame["value"].between(0, 1).all(), name
        assert (frame["version"] == registry.get(name).version).all()
    quality = _metric(project, "object", "annotation_quality")["value"]
    assert set(np.round(quality * 10, 6)) <= set(range(11))  # a share of 10 neighbours
    suggestions = pd.read_parquet(project / "datasets" / DATASET / "embeddings" / "label_suggestions.parquet")
    assert len(suggestions) == 165
    disagree = suggestions["suggested_category_id"] != suggestions["category_id"]
    assert (suggestions["disagrees"] == disagree).all()
    assert (
        suggestions.loc[~disagree, "suggested_probability"] == suggestions.loc[~disagree, "label_confidence"]
    ).all()
    report = run_cli("report", "--project", str(project), "--json")
    assert report["metrics"]["annotation_quality"]["count"] == 165


def test_swapped_labels_rank_first(embedded: dict) -> None:
    project = embedded["project"]
    for name in ("annotation_quality", "label_confidence"):
        frame = _metric(project, "object", name)
        is_swapped = frame["object_id"].isin(embedded["swapped"]).to_numpy()
        auroc, precision = rank_figures(frame["value"].to_numpy(), is_swapped)
        print(name, f"AUROC {auroc:.3f} precision@{is_swapped.sum()} {precision:.3f}")
        assert auroc > 0.8 and precision > 0.5, (name, auroc, precision)
    reader = ProjectReader(project)
    first = es.suggestion_page(reader, [DATASET], "label_confidence", page=0, page_size=16)
    assert first["label_confidence"].is_monotonic_increasing
    assert first["object_id"].isin(embedded["swapped"]).mean() > 0.5  # the gallery's first page: mostly swaps
    assert {"category", "suggested_category", "file_name", "path", "bbox_w"} <= set(first.columns)
    assert es.suggestion_count(reader, [DATASET], only_disagreeing=True) == int(
        pd.read_parquet(project / "datasets" / DATASET / "embeddings" / "label_suggestions.parquet")[
            "disagrees"
        ].sum()
    )


def test_unchanged_rerun_is_skipped_and_changes_nothing(embedded: dict) -> None:
    project = embedded["project"]
    folder = project / "datasets" / DATASET
    files = [*folder.glob("metrics/*.parquet"), *folder.glob("embeddings/*"), folder / "duplicates.parquet"]
    before = {path: path.stat().st_mtime_ns for path in files}
    summary = run_cli("metrics", "--project", str(project), "--embeddings")
    assert summary["datasets"][DATASET]["embeddings"]["skipped"] is True
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_map_and_more_like_this(embedded: dict) -> None:
    project = embedded["project"]
    points, total = es.map_points(project, [DATASET], "object", "pca")
    assert total == len(points) == 165 and np.isfinite(points[["x", "y"]].to_numpy()).all()
    cached = list((project / "datasets" / DATASET / "embeddings").glob("map_object_pca_*.parquet"))
    assert len(cached) == 1
    again, _ = es.map_points(project, [DATASET], "object", "pca")
    pd.testing.assert_frame_equal(points, again)
    sample, total = es.map_points(project, [DATASET], "object", "pca", max_points=50)
    assert (len(sample), total) == (50, 165)
    vectors, keys = es.load_vectors(project, DATASET, "object")
    row = 7
    similar = es.similar_items(
        project, [DATASET], "object", DATASET, int(keys.image_id[row]), int(keys.object_id[row])
    )
    assert len(similar) == 12 and similar["similarity"].is_monotonic_decreasing
    expected = np.sort(np.delete(np.asarray(vectors) @ np.asarray(vectors[row]), row))[::-1][:12]
    np.testing.assert_allclose(similar["similarity"], expected, rtol=1e-5)
    assert not (
        (similar["image_id"] == keys.image_id[row]) & (similar["object_id"] == keys.object_id[row])
    ).any()
    images = es.similar_items(project, [DATASET], "image", DATASET, 0, top=5)
    assert len(images) == 5 and 0 not in images["image_id"].tolist()
    assert es.similar_items(project, [DATASET], "image", DATASET, 999) is None


# ----- small generated data: missing and broken images, duplicates, store_embeddings --------------------------


@pytest.fixture
def small_project(tmp_path: Path) -> tuple[Path, str]:
    images, annotations = write_small_coco(tmp_path / "src", n_images=5)
    (images / "img_4.jpg").unlink()  # missing at import
    import_coco(images, annotations, tmp_path / "p", dataset="small")
    (images / "img_3.jpg").write_bytes(b"not a jpeg any more")  # broke after the import
    return tmp_path / "p", "small"


def test_missing_and_broken_images_get_nan_and_forced_rerun_is_identical(
    small_project: tuple[Path, str],
) -> None:
    project, dataset = small_project
    first = es.compute_dataset_embeddings(project, dataset, progress=None)
    assert (first["images"], first["objects"]) == (3, 6)  # img_3 broken, img_4 missing: 2 objects each
    quality = _metric_small(project, dataset, "object", "annotation_quality")
    lost = quality["image_id"].isin([3, 4])
    assert quality.loc[lost, "value"].isna().all() and quality.loc[~lost, "value"].notna().all()
    unique = _metric_small(project, dataset, "image", "image_uniqueness").set_index("image_id")["value"]
    assert unique[[3, 4]].isna().all() and unique[[0, 1, 2]].notna().all()
    meta = es.load_meta(project, dataset)
    assert (meta["images_without_vector"], meta["objects_without_vector"]) == (2, 4)
    second = es.compute_dataset_embeddings(project, dataset, force=True)
    assert second["objects"] == 6 and es.load_meta(project, dataset)["run_id"] != meta["run_id"]
    pd.testing.assert_frame_equal(quality, _metric_small(project, dataset, "object", "annotation_quality"))


def _metric_small(project: Path, dataset: str, level: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / dataset / "metrics" / f"{level}__{name}.parquet")


def test_store_embeddings_groups_duplicates_beside_other_kinds(small_project: tuple[Path, str]) -> None:
    project, dataset = small_project
    path = project / "datasets" / dataset / "duplicates.parquet"
    other = pd.DataFrame(
        {"dataset": [dataset] * 2, "image_id": [0, 1], "kind": ["near"] * 2, "group_id": [0, 0]}
    )
    other.to_parquet(path, index=False)
    basis = np.eye(8, dtype=np.float32)
    image_vectors = np.stack([basis[0], basis[1], basis[0], basis[2], basis[1]])  # 0~2 and 1~4 identical
    objects = pd.read_parquet(project / "datasets" / dataset / "objects.parquet")
    object_vectors = basis[objects["category_id"].to_numpy() + 3]  # one direction per class
    object_vectors[0] = basis[objects["category_id"].to_numpy()[1] + 3]  # object 0 looks like the other class
    for _ in range(2):  # twice: the embedding groups are replaced, not appended
        es.store_embeddings(
            project,
            dataset,
            np.arange(5),
            image_vectors,
            objects[["image_id", "object_id"]],
            object_vectors,
            {"backbone": "test"},
        )
    stored = pd.read_parquet(path)
    assert len(stored[stored["kind"] == "near"]) == 2
    groups = stored[stored["kind"] == "embedding"].groupby("group_id")["image_id"].apply(sorted).tolist()
    assert sorted(groups) == [[0, 2], [1, 4]]
    unique = _metric_small(project, dataset, "image", "image_uniqueness").set_index("image_id")["value"]
    assert unique[0] == pytest.approx(0.0, abs=1e-6) and unique[3] == pytest.approx(1.0)
    quality = _metric_small(project, dataset, "object", "annotation_quality")
    assert quality["value"].iloc[0] < 0.5  # most of its 9 neighbours carry the other class
    suggestions = pd.read_parquet(project / "datasets" / dataset / "embeddings" / "label_suggestions.parquet")
    assert bool(suggestions.iloc[0]["disagrees"])  # the classifier suggests the other class for object 0
    assert es.datasets_with_embeddings(Project(project), [dataset, "other"]) == [dataset]
    shutil.rmtree(project / "datasets" / dataset / "embeddings")
    assert es.load_meta(project, dataset) is None


def synthetic_embedded_project(folder: Path, confused: int = 5) -> tuple[Path, list[tuple[int, int]]]:
    """fruits_nuts imported, with vectors made here (one direction per class plus noise) instead of a CNN,
    so page tests need no torch. The first ``confused`` objects get another class's direction: they are
    the likely-mislabelled ones. Returns (project, their (image_id, object_id) keys)."""
    source = shared("fruits_nuts")
    project = folder / "project"
    import_coco(source / "images", source / "annotations.json", project, dataset="fruits")
    objects = pd.read_parquet(project / "datasets" / "fruits" / "objects.parquet")
    rng = np.random.default_rng(0)
    classes = objects["category_id"].to_numpy()
    looks_like = classes.copy()
    looks_like[:confused] = np.where(
        classes[:confused] == classes.max(), classes.min(), classes[:confused] + 1
    )
    object_vectors = rng.normal(0, 0.15, (len(objects), 32)).astype(np.float32)
    object_vectors[np.arange(len(objects)), looks_like] += 1.0
    image_vectors = rng.normal(0, 1, (18, 32)).astype(np.float32)
    es.store_embeddings(
        project,
        "fruits",
        np.arange(18),
        image_vectors,
        objects[["image_id", "object_id"]],
        object_vectors,
        {"backbone": "synthetic"},
    )
    keys = [(int(i), int(o)) for i, o in objects[["image_id", "object_id"]].to_numpy()[:confused]]
    return project, keys


def test_import_coco_with_embeddings(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=3)
    project = tmp_path / "p"
    summary = run_cli(*import_argv(images, annotations, project, "tiny", "--embeddings", "--quiet"))
    assert (summary["embeddings"]["images"], summary["embeddings"]["objects"]) == (3, 6)
    vectors, keys = es.load_vectors(project, "tiny", "object")
    assert vectors.shape == (6, 1280) and len(keys) == 6
    assert len(_metric_small(project, "tiny", "object", "label_confidence")) == 6
