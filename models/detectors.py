"""Model builders: torchvision's Mask R-CNN R50-FPN (v1, the seed's model, and v2), a light
MobileNetV2-FPN one, and a MobileNetV3-Large-FPN one shaped like torchvision's Faster R-CNN of that
name (so its COCO weights load into it; the mask head then starts fresh).

Both set the model's own resize (min_size/max_size) from image_size so the network sees images at
the size the dataset produced, instead of torchvision's default 800-1333 upscaling.
"""

from __future__ import annotations

import logging

from torch import nn

from metrics.weights import ensure_offline_weights

log = logging.getLogger(__name__)


def _resnet50_fpn(num_classes: int, pretrained: bool, image_size: int, load_weights: bool) -> nn.Module:
    """torchvision's maskrcnn_resnet50_fpn recipe: frozen BN and 3 trainable stages on ImageNet weights."""
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = None
    if pretrained:
        weights = ResNet50_Weights.IMAGENET1K_V1 if load_weights else None
        try:
            backbone = resnet_fpn_backbone(
                backbone_name="resnet50", weights=weights, norm_layer=FrozenBatchNorm2d, trainable_layers=3
            )
        except Exception as error:  # offline: the download fails fast
            log.warning("ResNet50 ImageNet weights unavailable (%s); backbone starts from scratch", error)
    if backbone is None:
        pretrained = False
        backbone = resnet_fpn_backbone(
            backbone_name="resnet50", weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5
        )
    model = MaskRCNN(backbone, num_classes=num_classes, min_size=image_size, max_size=image_size)
    model.backbone_pretrained = pretrained
    return model


def _mobilenet_v2_fpn(num_classes: int, pretrained: bool, image_size: int, load_weights: bool) -> nn.Module:
    """Light Mask R-CNN: MobileNetV2 features + 3-level FPN (128 channels) and slimmer RoI heads."""
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.misc import FrozenBatchNorm2d

    features = None
    if pretrained:
        weights = None
        if load_weights:
            ensure_offline_weights()
            weights = MobileNet_V2_Weights.IMAGENET1K_V1
        try:
            features = mobilenet_v2(weights=weights, norm_layer=FrozenBatchNorm2d).features
            for layer in features[:4]:  # stride-2/4 stem: generic edges, keep ImageNet's
                layer.requires_grad_(False)
        except Exception as error:
            log.warning("MobileNetV2 ImageNet weights unavailable (%s); backbone starts from scratch", error)
    if features is None:
        pretrained = False
        features = mobilenet_v2(weights=None).features
    # Outputs at the end of the stride-8, -16 and -32 stages (32, 96 and 1280 channels).
    backbone = BackboneWithFPN(
        features,
        return_layers={"6": "0", "13": "1", "18": "2"},
        in_channels_list=[32, 96, 1280],
        out_channels=128,
    )
    anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    # Light heads: the mask head (4 convs on up to 128 RoIs per image) dominates a CPU step, so it
    # runs at 128 channels on fewer sampled RoIs (128 per image, 32 positives at most).
    model = MaskRCNN(
        backbone,
        num_classes=None,
        mask_head=MaskRCNNHeads(128, [128, 128, 128, 128], 1),
        mask_predictor=MaskRCNNPredictor(128, 128, num_classes),
        box_predictor=FastRCNNPredictor(1024, num_classes),
        box_batch_size_per_image=128,
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2),
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=14, sampling_ratio=2),
    )
    model.backbone_pretrained = pretrained
    return model


def _resnet50_fpn_v2(num_classes: int, pretrained: bool, image_size: int, load_weights: bool) -> nn.Module:
    """torchvision's maskrcnn_resnet50_fpn_v2 (Li et al. 2021 recipe: BN heads, 2-conv RPN head)."""
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    def build(weights_backbone: ResNet50_Weights | None) -> nn.Module:
        return maskrcnn_resnet50_fpn_v2(
            weights=None,
            weights_backbone=weights_backbone,
            num_classes=num_classes,
            min_size=image_size,
            max_size=image_size,
        )

    try:
        model = build(ResNet50_Weights.IMAGENET1K_V1 if (pretrained and load_weights) else None)
    except Exception as error:  # offline: the download fails fast; the same model from scratch
        log.warning("ResNet50 ImageNet weights unavailable (%s); backbone starts from scratch", error)
        pretrained = False
        model = build(None)
    model.backbone_pretrained = pretrained
    return model


def _mobilenet_v3_large_fpn(
    num_classes: int, pretrained: bool, image_size: int, load_weights: bool
) -> nn.Module:
    """Mask R-CNN on torchvision's fasterrcnn_mobilenet_v3_large_fpn body (same module names and
    shapes, so FasterRCNN_MobileNet_V3_Large_FPN_Weights load into everything but the mask head)."""
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    body = None
    if pretrained:
        try:
            weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if load_weights else None
            body = mobilenet_v3_large(weights=weights, norm_layer=FrozenBatchNorm2d)
        except Exception as error:
            log.warning("MobileNetV3 ImageNet weights unavailable (%s); backbone starts from scratch", error)
    if body is None:
        pretrained = False
        body = mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d)
    backbone = _mobilenet_extractor(body, True, 3 if pretrained else 6)
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3
    anchors = AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    model = MaskRCNN(
        backbone, num_classes, rpn_anchor_generator=anchors, min_size=image_size, max_size=image_size
    )
    model.backbone_pretrained = pretrained
    return model


BUILDERS = {
    "maskrcnn_resnet50_fpn": _resnet50_fpn,
    "maskrcnn_resnet50_fpn_v2": _resnet50_fpn_v2,
    "maskrcnn_mobilenet_v2_fpn": _mobilenet_v2_fpn,
    "maskrcnn_mobilenet_v3_large_fpn": _mobilenet_v3_large_fpn,
}


def build_model(
    name: str, num_classes: int, pretrained_backbone: bool, image_size: int, load_weights: bool = True
) -> nn.Module:
    """A Mask R-CNN with `num_classes` outputs (background included) for images of longest side image_size.

    pretrained_backbone picks the ImageNet recipe (frozen batch norm, frozen stem); when the weights
    cannot be had it falls back to a scratch backbone with a log line. `model.backbone_pretrained`
    says which structure was built; load_weights=False builds that structure without fetching
    weights (a checkpoint will overwrite them).
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(BUILDERS)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must count background plus at least one class, got {num_classes}")
    return BUILDERS[name](num_classes, pretrained_backbone, image_size, load_weights)
