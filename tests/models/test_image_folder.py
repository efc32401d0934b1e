"""`cocolens predict --images FOLDER`: new photos that are no dataset yet are imported, then predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cli import main
from models.config import load_config
from models.detectors import build_model
from models.train import save_checkpoint
from store.project import Project


def _checkpoint(folder: Path) -> Path:
    """An untrained light model whose checkpoint predicts COCO ids 5 and 9 (scores ~1/3: above 0)."""
    torch.manual_seed(0)
    model = build_model("maskrcnn_mobilenet_v2_fpn", 3, False, 128, load_weights=False)
    config = load_config(model="maskrcnn_mobilenet_v2_fpn", max_side=128, score_threshold=0.0)
    meta = {
        "model": config.model,
        "num_classes": 3,
        "pretrained_backbone": False,
        "image_size": 128,
        "label_to_category": {"1": 5, "2": 9},
        "category_names": {"5": "nut", "9": "fig"},
        "config": config.to_dict(),
    }
    path = folder / "best.pt"
    save_checkpoint(path, model, meta)
    return path


def _photos(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / ("day2" if i == count - 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"photo_{i}.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_on_a_folder_imports_it_first_then_predicts(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path)
    photos = _photos(tmp_path / "photos", 3)
    root = tmp_path / "project"
    args = ["predict", "--project", str(root), "--checkpoint", str(checkpoint), "--images", str(photos)]
    assert main([*args, "--model", "first"]) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    project = Project(root)
    assert project.datasets() == ["photos"]  # named after the folder
    assert summary["imported_images"]["dataset"] == "photos"
    from models.frames import dataset_frames

    frames = dataset_frames(project, "photos")
    assert sorted(frames.images["file_name"]) == ["day2/photo_2.jpg", "photo_0.jpg", "photo_1.jpg"]
    assert len(frames.objects) == 0  # images only
    assert sorted(frames.categories["category_id"]) == [5, 9]  # the model's categories
    results = json.loads(Path(summary["results_file"]).read_text())
    assert {r["image_id"] for r in results} == set(frames.images["image_id"])
    assert "first" in project.models()

    # a second model on the same folder reuses the dataset (no second import)
    assert main([*args, "--model", "second"]) == 0
    assert "imported_images" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert project.datasets() == ["photos"] and {"first", "second"} <= set(project.models())


def test_predict_on_a_missing_folder_is_one_line(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path)
    missing = tmp_path / "nowhere"
    args = ["predict", "--project", str(tmp_path / "p"), "--checkpoint", str(checkpoint)]
    assert main([*args, "--images", str(missing), "--model", "m"]) == 2
    assert capsys.readouterr().err.strip() == f"cocolens: error: {missing}: field '--images': no such folder"
    assert main([*args, "--model", "m"]) == 2
    assert "field '--dataset': name the dataset to predict" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
