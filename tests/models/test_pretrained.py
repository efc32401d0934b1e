"""Fine-tuning from detector weights: a local state-dict file, and torchvision names offline."""

from __future__ import annotations

import pytest
import torch

from cli import main
from models import job_launch, pretrained
from models.config import load_config
from models.detectors import build_model
from models.train import build_detector, fit
from store.errors import InputError
from store.project import Project
from tests.models.test_jobs import make_project
from tests.models.tiny_configs import FAST, LIGHT_CPU

TINY = {**LIGHT_CPU, "batch_size": 2, "overfit_images": 4, "hflip": False, "seed": 0, "log_every": 100}


def test_fine_tune_from_a_local_file_changes_the_first_epoch_loss(fruits, tmp_path):
    # "pretraining": a model trained 4 epochs on the same images, saved as a plain state dict
    first = fit(load_config(**TINY, epochs=4), fruits, fruits, tmp_path / "pre")
    state = torch.load(first["checkpoint"], weights_only=True)["state_dict"]
    weights = tmp_path / "pretrained.pth"
    torch.save(state, weights)

    scratch = fit(load_config(**TINY, epochs=1), fruits, fruits, tmp_path / "scratch")
    tuned = fit(load_config(**TINY, epochs=1, weights=str(weights)), fruits, fruits, tmp_path / "tuned")
    scratch_loss = scratch["history"][0]["losses"]["loss"]
    tuned_loss = tuned["history"][0]["losses"]["loss"]
    # same seed, same data order: only the starting weights differ, and they already know the task
    assert tuned_loss < 0.8 * scratch_loss, (tuned_loss, scratch_loss)
    meta = torch.load(tuned["checkpoint"], weights_only=True)["meta"]
    assert meta["weights"] == str(weights)
    # every tensor but the 8 of the replaced predictors (box cls_score + bbox_pred, the whole
    # MaskRCNNPredictor: conv5_mask + mask_fcn_logits; weight and bias each) was loaded
    assert meta["weights_loaded"]["skipped"] == 8
    assert meta["weights_loaded"]["loaded"] == len(state) - 8


def test_heads_are_replaced_for_another_class_count(tmp_path):
    source = build_model("maskrcnn_mobilenet_v2_fpn", 91, False, 128, load_weights=False)
    weights = tmp_path / "coco91.pth"
    torch.save(source.state_dict(), weights)
    model = build_detector(load_config(**TINY, weights=str(weights)), num_classes=4)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    name = "backbone.fpn.inner_blocks.0.0.weight"
    assert torch.equal(model.state_dict()[name], source.state_dict()[name])


def test_a_file_of_another_architecture_or_not_a_state_dict_is_one_line(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="share no layer with this model"):
        build_detector(load_config(**TINY, weights=str(other)), num_classes=4)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"junk.pth: .*not a weights file torch.load\(weights_only=True\)"):
        pretrained.check_weights(str(junk), "maskrcnn_mobilenet_v2_fpn")


def _offline(_weights):
    raise ConnectionError("<urlopen error [Errno -3] Temporary failure in name resolution>")


def test_missing_weights_offline_is_one_line_and_no_job(tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub folder
    monkeypatch.setattr(pretrained, "_download", _offline)
    config = tmp_path / "train.toml"
    config.write_text(
        'model = "maskrcnn_resnet50_fpn_v2"\nweights = "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1"\n'
        'device = "cpu"\nepochs = 1\n'
    )
    code = main(["train", "--project", str(root), "--train", "tr", "--val", "va", "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert "weights MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 not available" in err
    assert "put maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth (from https://" in err
    assert f"in {hub}" in err and "field 'weights'" in err
    jobs_dir = Project(root).jobs_dir
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())  # no job folder was made

    # the form's path (prepare_config + start_job) stops at the same line, and a missing file too
    cfg = job_launch.prepare_config(None, **{**FAST, "model": "maskrcnn_mobilenet_v3_large_fpn",
                                       "weights": "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"})  # fmt: skip
    with pytest.raises(InputError, match="put fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"):
        job_launch.start_job(root, "tr", "va", cfg)
    cfg = job_launch.prepare_config(None, **{**FAST, "weights": str(tmp_path / "absent.pth")})
    with pytest.raises(InputError, match=r"absent.pth: field 'weights': no such weights file"):
        job_launch.start_job(root, "tr", "va", cfg)
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())


def test_weights_present_in_the_hub_folder_need_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(pretrained, "_download", _offline)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth").write_bytes(b"x")
    pretrained.check_weights(
        "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1", "maskrcnn_mobilenet_v3_large_fpn"
    )


def test_config_names_the_family_a_torchvision_name_needs():
    with pytest.raises(ValueError, match="are maskrcnn_resnet50_fpn_v2 weights: set model"):
        load_config(weights="MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1")
    assert load_config(model="maskrcnn_resnet50_fpn_v2", weights="MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1")


def test_torchvision_coco_weights_layout_fits_the_v3_model():
    """FasterRCNN_MobileNet_V3_Large_FPN weights load into everything but the heads and the mask branch:
    checked on torchvision's own (randomly initialised) Faster R-CNN, so no download is needed."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    source = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
    model = build_model("maskrcnn_mobilenet_v3_large_fpn", 4, True, 320, load_weights=False)
    counts = pretrained.apply_weights(model, source.state_dict(), "tv")
    # frozen batch norm keeps no num_batches_tracked (torchvision's COCO files, trained frozen, have none)
    counters = sum(1 for k in source.state_dict() if k.endswith("num_batches_tracked"))
    assert counts["skipped"] == 4 + counters  # + cls_score and bbox_pred, weight and bias
    assert counts["loaded"] == len(source.state_dict()) - 4 - counters
    box_head = "roi_heads.box_head.fc6.weight"
    assert torch.equal(model.state_dict()[box_head], source.state_dict()[box_head])
