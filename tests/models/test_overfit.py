"""Acceptance: the light Mask R-CNN memorises 4 fruits_nuts images on CPU in a few minutes."""

import pytest

from models.data import frames_to_coco
from models.predict import load_checkpoint, predict
from models.train import coco_stats, fit, overfit_frames
from tests.models.tiny_configs import light_config


@pytest.mark.slow
def test_light_model_overfits_four_images_on_cpu(fruits, tmp_path):
    config = light_config(
        pretrained_backbone=True,
        overfit_images=4,
        batch_size=4,
        epochs=12,
        eval_every=12,
        lr=5e-4,
        max_side=256,
        log_every=1,
        seed=0,
    )
    events = []
    summary = fit(config, fruits, fruits, tmp_path, events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert len(losses) == 12
    assert losses[-1] <= 0.5 * losses[0], losses
    val = summary["best_val"]
    assert val["bbox"]["AP50"] > 0.3 and val["segm"]["AP50"] > 0.3, val
    assert val["bbox"]["AP"] > 0.1 and val["segm"]["AP"] > 0.1, val

    # The saved model, through predict(), scores about the same against the ORIGINAL annotations:
    # boxes and masks come back in the 800×600 frame with the COCO category ids.
    loaded = load_checkpoint(summary["checkpoint"], "cpu")
    few = overfit_frames(fruits, 4)
    results = predict(loaded.model, few.images, "cpu", score_threshold=0.05, max_side=256)
    gt = frames_to_coco(few)
    for iou_type in ("bbox", "segm"):
        stats = coco_stats(gt, results, iou_type)
        assert stats["AP50"] > 0.3, (iou_type, stats)
        assert abs(stats["AP"] - val[iou_type]["AP"]) < 0.15, (iou_type, stats["AP"], val[iou_type]["AP"])
