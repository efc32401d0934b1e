import logging

import pytest
import torch

from models.detectors import build_model


@pytest.mark.parametrize("name", ["maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v2_fpn"])
def test_models_predict_masks_at_the_input_size(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, pretrained_backbone=False, image_size=160).eval()
    assert model.transform.min_size == (160,) and model.transform.max_size == 160
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    model.roi_heads.detections_per_img = 3  # random weights: keep the mask head's work small
    model.roi_heads.score_thresh = 0.0
    model.rpn._post_nms_top_n["testing"] = 50
    with torch.inference_mode():
        (out,) = model([torch.rand(3, 120, 160)])
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert len(out["boxes"]) == 3
    assert out["masks"].shape == (3, 1, 120, 160)


def test_mobilenet_backbone_loads_imagenet_weights_offline():
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    model = build_model("maskrcnn_mobilenet_v2_fpn", 2, pretrained_backbone=True, image_size=128)
    try:
        reference = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1).features.state_dict()
    except Exception as error:  # noqa: BLE001 - no wheel, no network
        pytest.skip(f"MobileNetV2 ImageNet weights unavailable here: {error}")
    body = model.backbone.body.state_dict()
    torch.testing.assert_close(body["0.0.weight"], reference["0.0.weight"])
    torch.testing.assert_close(body["13.conv.2.weight"], reference["13.conv.2.weight"])
    assert not model.backbone.body["0"][0].weight.requires_grad  # stem frozen
    assert model.backbone.body["13"].conv[2].weight.requires_grad


def test_unknown_model_and_too_few_classes():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("yolo", 3, False, 128)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("maskrcnn_mobilenet_v2_fpn", 1, False, 128)


def test_resnet_falls_back_to_scratch_with_a_log_line_when_offline(caplog, monkeypatch):
    from torchvision.models import ResNet50_Weights

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with caplog.at_level(logging.WARNING, logger="models.detectors"):
        model = build_model("maskrcnn_resnet50_fpn", 3, True, 256)
    assert "from scratch" in caplog.text
    assert model.backbone_pretrained is False
    assert isinstance(model.backbone.body.bn1, torch.nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v2_fpn"])
def test_structure_without_weights_matches_the_pretrained_one(name):
    pretrained_structure = build_model(name, 3, True, 128, load_weights=False)
    assert pretrained_structure.backbone_pretrained is True
    scratch = build_model(name, 3, False, 128)
    assert scratch.backbone_pretrained is False
    from torchvision.ops.misc import FrozenBatchNorm2d

    def norms(model):
        return {type(m) for m in model.backbone.body.modules() if type(m).__name__.endswith("BatchNorm2d")}

    assert norms(pretrained_structure) == {FrozenBatchNorm2d}
    assert norms(scratch) == {torch.nn.BatchNorm2d}
