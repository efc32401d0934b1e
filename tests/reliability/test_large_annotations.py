"""Very large annotation files: streamed (store/coco_reader.py reads files above STREAM_ABOVE_BYTES
with ijson, two passes) or, where a file must be read whole, refused above MAX_ANNOTATION_BYTES with
one line. The thresholds are lowered here so that small files take the large-file paths quickly.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from store import coco_reader
from tests.conftest import write_small_coco
from tests.reliability.hostile import assert_refused, run_cli


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Every annotations file above 1 kB takes the streaming path; counts its calls.

    ``raising=True`` (monkeypatch's default): a renamed threshold or reader fails here instead of
    silently leaving the test on the in-memory path."""
    monkeypatch.setattr(coco_reader, "STREAM_ABOVE_BYTES", 1024)
    calls = {"streamed": 0}
    original = coco_reader._read_streaming

    def counting(*args, **kwargs):
        calls["streamed"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(coco_reader, "_read_streaming", counting)
    return calls


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("large")
    images, ann = write_small_coco(folder, n_images=6)
    coco = json.loads(ann.read_text())
    coco["info"] = {"description": "x" * 2000}  # past 1 kB whatever the records
    ann.write_text(json.dumps(coco))
    return {"images": images, "ann": ann, "coco": coco, "folder": folder}


def _import(source: dict, ann, project, dataset: str) -> list[str]:
    return [
        "import", "coco", "--images", str(source["images"]), "--annotations", str(ann),
        "--project", str(project), "--dataset", dataset, "--quiet", "--workers", "1",
    ]  # fmt: skip


def test_streamed_import_equals_the_in_memory_one(source, tmp_path, capsys, streamed, monkeypatch):
    code, _, err = run_cli(capsys, _import(source, source["ann"], tmp_path / "p", "streamed"))
    assert code == 0, err
    assert streamed["streamed"] == 1
    monkeypatch.setattr(coco_reader, "STREAM_ABOVE_BYTES", 1 << 40)
    code, _, err = run_cli(capsys, _import(source, source["ann"], tmp_path / "p", "loaded"))
    assert code == 0, err
    assert streamed["streamed"] == 1  # the second import read the file whole
    for table in ("images", "objects", "categories"):
        a = pd.read_parquet(tmp_path / "p" / "datasets" / "streamed" / f"{table}.parquet").drop(
            columns="dataset"
        )
        b = pd.read_parquet(tmp_path / "p" / "datasets" / "loaded" / f"{table}.parquet").drop(
            columns="dataset"
        )
        pd.testing.assert_frame_equal(a, b, check_dtype=False)


STREAMED_ERRORS = {
    "annotation-deep-in-file": (
        lambda c: c["annotations"][9].update(bbox=[1, 2, -3, 4]),
        ["annotations[9] (id=10)", "'bbox'", "negative width"],
    ),
    "image-record": (lambda c: c["images"][4].update(width="wide"), ["images[4] (id=4)", "'width'"]),
    "category-last-in-file": (lambda c: c["categories"][1].pop("name"), ["categories[1] (id=2)", "'name'"]),
    "dangling-category": (
        lambda c: c["annotations"][3].update(category_id=77),
        ["annotations[3] (id=4)", "no category has id 77"],
    ),
}


@pytest.mark.parametrize("case_id", list(STREAMED_ERRORS))
def test_streamed_file_with_a_bad_record_is_one_line(source, tmp_path, capsys, streamed, case_id):
    mutate, fragments = STREAMED_ERRORS[case_id]
    coco = json.loads(json.dumps(source["coco"]))
    coco["categories"], coco["images"] = coco.pop("categories"), coco.pop("images")  # categories after images
    mutate(coco)
    bad = tmp_path / f"{case_id}.json"
    bad.write_text(json.dumps(coco))
    project = tmp_path / "project"
    assert_refused(capsys, _import(source, bad, project, "bad"), project, [str(bad), *fragments])
    assert not project.exists()
    assert streamed["streamed"] == 1  # the refusal came from the streaming reader


def test_streamed_file_cut_short_is_one_line(source, tmp_path, capsys, streamed):
    text = json.dumps(source["coco"])
    bad = tmp_path / "cut.json"
    bad.write_text(text[: len(text) - 40])
    project = tmp_path / "project"
    assert_refused(capsys, _import(source, bad, project, "cut"), project, [str(bad), "invalid JSON"])
    assert streamed["streamed"] == 1


def test_file_read_whole_above_the_limit_is_refused(source, tmp_path, capsys, monkeypatch):
    """Predictions (and annotations small enough to be read whole) have a size limit: one line, exit 2."""
    project = tmp_path / "project"
    code, _, err = run_cli(capsys, _import(source, source["ann"], project, "ok"))
    assert code == 0, err
    preds = tmp_path / "preds.json"
    rows = [{"image_id": 0, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5, "pad": "y" * 50}] * 40
    preds.write_text(json.dumps(rows))
    monkeypatch.setattr(coco_reader, "MAX_ANNOTATION_BYTES", 1024)
    argv = ["import", "predictions", str(preds), "--project", str(project), "--model", "m", "--quiet"]
    assert_refused(capsys, argv, project, [str(preds), "the limit is"])
    assert_refused(
        capsys,
        _import(source, source["ann"], project, "again"),
        project,
        [str(source["ann"]), "the limit is"],
    )
