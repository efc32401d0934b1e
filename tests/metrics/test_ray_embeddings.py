"""``cocolens metrics --embeddings --engine ray`` stores the local engine's vectors and scores.

One local 2-CPU Ray instance serves the module (start-up ~10–30 s here); the Ray test runs the real
CLI over a small generated dataset with one image broken after the import.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from metrics.ray_embeddings import actor_plan
from tests.conftest import write_small_coco


def test_actors_ask_for_a_gpu_only_where_the_cluster_has_one() -> None:
    assert actor_plan({"CPU": 16.0, "GPU": 2.0}) == (2, {"num_gpus": 1, "num_cpus": 1}, "cuda")
    assert actor_plan({"CPU": 2.0}) == (2, {"num_cpus": 1}, "cpu")
    assert actor_plan({"CPU": 16.0, "GPU": 1.0}, device="cpu") == (16, {"num_cpus": 1}, "cpu")
    assert actor_plan({"CPU": 0.5, "GPU": 0.5}) == (1, {"num_cpus": 1}, "cpu")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="ray[data] is not installed in this environment")
    started = not ray.is_initialized()
    if started:
        from metrics.ray_engine import start_ray

        start_ray(workers=2)
    yield ray
    if started:
        ray.shutdown()


def _metrics_cli(project: Path, engine: str) -> dict:
    out = io.StringIO()
    argv = ["metrics", "--project", str(project), "--embeddings", "--no-label-issues", "--engine", engine]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(argv) == 0
    return json.loads(out.getvalue())


@pytest.mark.slow  # Ray start-up plus two embedding runs
def test_ray_engine_vectors_and_scores_equal_the_local_engine(local_ray, tmp_path, monkeypatch) -> None:
    from metrics import ray_embeddings, vector_shards
    from store.coco_import import import_coco

    images, annotations = write_small_coco(tmp_path / "src", n_images=6)
    import_coco(images, annotations, tmp_path / "local", dataset="d", workers=1, engine="local")
    (images / "img_5.jpg").write_bytes(b"not a jpeg any more")  # broken after the import: skipped
    shutil.copytree(tmp_path / "local", tmp_path / "ray")

    shards_seen: list[int] = []
    assemble = ray_embeddings.assemble_in_row_order

    def counting(folder, out, dim):
        shards_seen.append(len(vector_shards.shard_files(folder)))
        return assemble(folder, out, dim)

    monkeypatch.setattr(ray_embeddings, "CPU_BATCH", 2)  # several batches reach the driver...
    monkeypatch.setattr(vector_shards, "SHARD_ROWS", 3)  # ...which cuts them into several shards
    monkeypatch.setattr(ray_embeddings, "assemble_in_row_order", counting)
    local = _metrics_cli(tmp_path / "local", "local")["datasets"]["d"]["embeddings"]
    on_ray = _metrics_cli(tmp_path / "ray", "ray")["datasets"]["d"]["embeddings"]
    assert (on_ray["images"], on_ray["objects"]) == (local["images"], local["objects"]) == (5, 10)
    assert len(shards_seen) == 2 and min(shards_seen) >= 2, shards_seen  # images, then objects

    folders = {name: tmp_path / name / "datasets/d/embeddings" for name in ("local", "ray")}
    assert json.loads((folders["ray"] / "meta.json").read_text())["engine"] == "ray"
    for level in ("images", "objects"):
        expected = np.load(folders["local"] / f"{level}.npy", allow_pickle=False)
        np.testing.assert_allclose(
            np.load(folders["ray"] / f"{level}.npy", allow_pickle=False), expected, atol=1e-5
        )
        pd.testing.assert_frame_equal(
            pd.read_parquet(folders["ray"] / f"{level}_ids.parquet"),
            pd.read_parquet(folders["local"] / f"{level}_ids.parquet"),
        )
    for name in ("object__annotation_quality", "object__label_confidence", "image__image_uniqueness"):
        ray_values = pd.read_parquet(tmp_path / f"ray/datasets/d/metrics/{name}.parquet")
        local_values = pd.read_parquet(tmp_path / f"local/datasets/d/metrics/{name}.parquet")
        pd.testing.assert_frame_equal(ray_values, local_values, atol=1e-5)
    assert not (tmp_path / "ray" / ".staging").exists()
