"""The Ray Data engine computes exactly what the local engine computes, on a local 2-CPU Ray.

One Ray instance serves the module (starting it costs ~10–25 s here); each test then runs real
Ray Data jobs over real images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import shared, write_small_coco

ray = pytest.importorskip("ray", reason="ray[data] is not installed in this environment")

pytestmark = pytest.mark.slow  # Ray start-up alone takes ~10-25 s on 2 busy cores


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        from metrics.ray_engine import start_ray

        start_ray(workers=2)  # the same start-up the CLI uses: ships metrics/ with py_modules
    yield ray
    if started:
        ray.shutdown()


def _records(dataset: str) -> tuple[list[dict], list[int]]:
    root = shared(dataset)
    coco = json.loads((root / "annotations.json").read_text())
    records = [
        {
            "path": str(root / "images" / image["file_name"]),
            "width": image["width"],
            "height": image["height"],
        }
        for image in coco["images"]
    ]
    return records, [int(image["id"]) for image in coco["images"]]


@pytest.mark.parametrize("dataset", ["fruits_nuts", "blood_cells"])
def test_ray_rows_equal_local_rows_on_real_data(local_ray, dataset):
    from metrics.engines import image_rows

    records, ids = _records(dataset)
    local = dict(image_rows(records, ids, engine="local", workers=2))
    on_ray = dict(image_rows(records, ids, engine="ray", workers=2))
    assert sorted(on_ray) == list(range(len(records)))
    assert on_ray == local  # every field, every metric value bit-for-bit (JSON repr of floats)
    statuses = {row["status"] for row in on_ray.values()}
    assert statuses == {"ok"}
    brightness = [json.loads(row["metrics_json"])["brightness"] for row in on_ray.values()]
    assert all(0.0 <= value <= 1.0 for value in brightness)


def test_url_paths_are_fetched_like_local_files(local_ray):
    """file:// goes through pyarrow.fs exactly as s3:// would; a missing object is 'missing'."""
    from metrics.engines import image_rows

    records, ids = _records("fruits_nuts")
    records, ids = records[:4], ids[:4]
    urls = [{**record, "path": Path(record["path"]).as_uri()} for record in records]
    urls.append({"path": Path(records[0]["path"]).with_name("nope.jpg").as_uri(), "width": 10, "height": 10})
    local = dict(image_rows(records, ids, engine="local", workers=1))
    remote = dict(image_rows(urls, [*ids, 999], engine="ray", workers=2))
    for index in range(4):
        assert remote[index] == local[index]
    assert remote[4]["status"] == "missing"
    assert remote[4]["error"] == f"file not found: {urls[4]['path']}"
    assert json.loads(remote[4]["metrics_json"])["brightness"] is None


def test_import_with_project_engine_setting_equals_local_import(local_ray, tmp_path):
    from store.coco_import import import_coco
    from store.project import Project

    images_dir, ann = write_small_coco(tmp_path / "src", n_images=5)
    local_project = tmp_path / "local"
    import_coco(images_dir, ann, local_project, dataset="d", workers=2, engine="local")
    ray_project = Project(tmp_path / "ray")
    ray_project.ensure()
    ray_project.update_meta(settings={"engine": "ray"})
    summary = import_coco(images_dir, ann, ray_project.root, dataset="d", workers=2)
    assert summary["images"] == 5
    assert ray_project.dataset_meta("d")["engine"] == "ray"
    assert json.loads((local_project / "datasets/d/dataset.json").read_text())["engine"] == "local"
    local_dir, ray_dir = local_project / "datasets/d", ray_project.root / "datasets/d"
    names = sorted(p.relative_to(local_dir) for p in local_dir.rglob("*.parquet"))
    assert names == sorted(p.relative_to(ray_dir) for p in ray_dir.rglob("*.parquet"))
    assert len(names) > 10
    for name in names:
        pd.testing.assert_frame_equal(pd.read_parquet(local_dir / name), pd.read_parquet(ray_dir / name))


def test_unknown_engine_setting_is_a_one_line_input_error(tmp_path):
    from store.coco_import import import_coco
    from store.errors import InputError
    from store.project import Project

    images_dir, ann = write_small_coco(tmp_path / "src", n_images=1)
    project = Project(tmp_path / "p")
    project.ensure()
    project.update_meta(settings={"engine": "spark"})
    with pytest.raises(InputError, match="engine must be one of local, ray, got 'spark'"):
        import_coco(images_dir, ann, project.root, dataset="d")
    with pytest.raises(InputError, match="read by the Ray engine"):
        import_coco("s3://bucket/images", ann, project.root, dataset="d", engine="local")


def test_object_metrics_on_ray_equal_the_local_ones(local_ray):
    """Label metrics as Ray tasks over partitions of whole images: every value the local engine's."""
    import numpy as np

    from metrics.label_partitions import PER_IMAGE_METRICS
    from metrics.ray_objects import ray_table_values
    from tests.metrics.test_objects import run_all
    from tests.metrics.test_ray_objects import generated_tables

    objects, images = generated_tables(seed=5)
    with np.errstate(all="ignore"):
        expected = run_all(objects, images)
    got = ray_table_values(objects, images, sorted(PER_IMAGE_METRICS), workers=2, objects_per_partition=25)
    assert sorted(got) == sorted(PER_IMAGE_METRICS)
    for name in PER_IMAGE_METRICS:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)  # NaN where NaN
