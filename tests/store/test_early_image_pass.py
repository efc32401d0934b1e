"""The image pass queued before validation (store/early_image_pass.py) changes no value and no failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from metrics import pipeline
from store.coco_import import import_coco
from store.early_image_pass import queue_image_pass, start_image_pass_early
from store.errors import InputError
from tests.store.import_reference import REAL_SETS, REFERENCE_DIR, SHARED, snapshot, table_digest


def _made_coco(folder: Path, count: int = 40) -> tuple[Path, Path]:
    images = folder / "images"
    images.mkdir(parents=True)
    records, annotations = [], []
    for k in range(count):
        Image.new("RGB", (64, 48), (6 * k % 256, 120, 255 - 5 * k)).save(images / f"{k:03d}.jpg")
        records.append({"id": k + 1, "file_name": f"{k:03d}.jpg", "width": 64, "height": 48})
        annotations.append(
            {"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [4, 4, 20, 10], "area": 200}
        )
    records.append({"id": count + 1, "file_name": "gone.jpg", "width": 64, "height": 48})
    coco = {"images": records, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    ann = folder / "annotations.json"
    ann.write_text(json.dumps(coco))
    return images, ann


@pytest.fixture
def adopted(monkeypatch) -> list[int]:
    """How many queued chunks each image pass found waiting for it."""
    counts: list[int] = []
    real = pipeline._take_pool

    def take_pool(workers, plugins, chunks):
        pool, queued = real(workers, plugins, chunks)
        counts.append(len(queued))
        return pool, queued

    monkeypatch.setattr(pipeline, "_take_pool", take_pool)
    yield counts
    pipeline.discard_early_workers()


def test_an_import_with_its_pass_queued_early_writes_the_tables_a_plain_import_writes(
    tmp_path: Path, adopted
):
    images, ann = _made_coco(tmp_path)
    import_coco(images, ann, tmp_path / "plain", dataset="d", prewarm=False)
    pipeline.start_workers_early(2)
    assert queue_image_pass(images, ann) == 3  # 40 files with a file: 3 chunks of 16
    import_coco(images, ann, tmp_path / "early", dataset="d", prewarm=False)
    assert adopted == [0, 3]
    plain = snapshot(tmp_path / "plain" / "datasets" / "d", tmp_path)
    early = snapshot(tmp_path / "early" / "datasets" / "d", tmp_path)
    assert sorted(plain) == sorted(early)
    for name, frame in plain.items():
        assert table_digest(frame) == table_digest(early[name]), name


def test_a_real_set_imported_with_its_pass_queued_early_equals_the_reference(tmp_path: Path, adopted):
    images, annotations = REAL_SETS["fruits_nuts"]
    if not (SHARED / annotations).is_file():
        pytest.skip(f"shared data {SHARED / annotations} is absent")
    pipeline.start_workers_early(2)
    assert queue_image_pass(SHARED / images, SHARED / annotations) == 2
    import_coco(SHARED / images, SHARED / annotations, tmp_path / "p", dataset="fruits_nuts", prewarm=False)
    assert adopted == [2]
    actual = snapshot(tmp_path / "p" / "datasets" / "fruits_nuts", SHARED.resolve())
    expected = json.loads((REFERENCE_DIR / "real_sets_digests.json").read_text())["fruits_nuts"]
    assert {key: table_digest(frame) for key, frame in actual.items()} == expected


def test_a_guess_from_input_that_fails_validation_leaves_the_project_as_it_was(tmp_path: Path, adopted):
    images, ann = _made_coco(tmp_path)
    coco = json.loads(ann.read_text())
    coco["annotations"][7]["category_id"] = 99
    ann.write_text(json.dumps(coco))
    pipeline.start_workers_early(2)
    assert queue_image_pass(images, ann) == 3
    with pytest.raises(InputError, match="category_id"):
        import_coco(images, ann, tmp_path / "p", dataset="d")
    assert adopted == []  # no pass ran
    assert not (tmp_path / "p" / "datasets").exists() or not any((tmp_path / "p" / "datasets").iterdir())


@pytest.mark.parametrize(
    "change",
    [
        "too large",
        "not json",
        "images not a list",
        "boolean width",
        "no folder",
    ],
)
def test_nothing_is_guessed_where_the_guess_could_not_be_used(tmp_path: Path, monkeypatch, change: str):
    images, ann = _made_coco(tmp_path)
    coco = json.loads(ann.read_text())
    if change == "too large":
        monkeypatch.setattr("store.early_image_pass.MAX_ANNOTATIONS_BYTES", 100)
    elif change == "not json":
        ann.write_text('{"images": [')
    elif change == "images not a list":
        ann.write_text(json.dumps({**coco, "images": {"0": coco["images"][0]}}))
    elif change == "boolean width":
        coco["images"][3]["width"] = True
        ann.write_text(json.dumps(coco))
    elif change == "no folder":
        images = tmp_path / "elsewhere"
    pipeline.start_workers_early(2)
    try:
        assert queue_image_pass(images, ann) == 0
        assert pipeline._early_chunks == {}
    finally:
        pipeline.discard_early_workers()


@pytest.mark.parametrize(
    ("settings", "engine"),
    [
        ({"settings": {"engine": "ray"}, "plugins": []}, None),
        ({"settings": {}, "plugins": ["my_metrics.py"]}, None),
        ({"settings": {}, "plugins": []}, "ray"),
        (["not", "a", "settings", "object"], None),
    ],
    ids=["ray project", "plugin project", "--engine ray", "damaged project.json"],
)
def test_no_worker_starts_early_where_the_pass_runs_elsewhere(tmp_path: Path, settings, engine) -> None:
    images, ann = _made_coco(tmp_path)
    project = tmp_path / "p"
    project.mkdir()
    (project / "project.json").write_text(json.dumps(settings))
    try:
        assert start_image_pass_early(images, ann, project, engine, workers=2) == 0
        assert pipeline._early_pool is None and pipeline._early_chunks == {}
    finally:
        pipeline.discard_early_workers()


def test_a_plain_project_gets_its_workers_and_chunks_early(tmp_path: Path) -> None:
    images, ann = _made_coco(tmp_path)
    try:
        assert start_image_pass_early(images, ann, tmp_path / "new project", "local", workers=2) == 3
        assert pipeline._early_pool is not None
    finally:
        pipeline.discard_early_workers()
