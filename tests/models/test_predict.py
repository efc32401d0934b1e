import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torch import nn

from models.predict import load_checkpoint, predict
from models.train import overfit_frames, save_checkpoint


class HalfBoxModel(nn.Module):
    """Detects the top-left quarter of each input image, with a matching mask, as label 2."""

    def forward(self, images):
        outputs = []
        for image in images:
            h, w = image.shape[-2:]
            masks = torch.zeros((2, 1, h, w))
            masks[0, 0, : h // 2, : w // 2] = 0.9
            outputs.append(
                {
                    "boxes": torch.tensor([[0.0, 0.0, w / 2, h / 2], [0.0, 0.0, 4.0, 4.0]]),
                    "labels": torch.tensor([2, 1]),
                    "scores": torch.tensor([0.8, 0.01]),
                    "masks": masks,
                }
            )
        return outputs


def test_predictions_are_in_the_original_frame_with_original_category_ids(fruits):
    images = overfit_frames(fruits, 3).images
    done = []
    results = predict(
        HalfBoxModel(),
        images,
        "cpu",
        score_threshold=0.5,
        max_side=200,
        batch_size=2,
        progress=lambda d, t: done.append((d, t)),
        label_to_category={1: 10, 2: 20},
    )
    assert done == [(2, 3), (3, 3)]
    assert [r["image_id"] for r in results] == [0, 1, 2]  # the 0.01 detections are dropped
    for r in results:
        assert r["category_id"] == 20 and r["score"] == pytest.approx(0.8)
        assert r["bbox"] == pytest.approx([0.0, 0.0, 400.0, 300.0])  # 800×600 image, not 200×150
        rle = r["segmentation"]
        assert rle["size"] == [600, 800] and isinstance(rle["counts"], str)
        mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert abs(int(mask.sum()) - 400 * 300) < 0.02 * 400 * 300
        assert mask[:300, :400].mean() > 0.98 and mask[300:, :].sum() == 0


def test_predict_needs_a_label_mapping(fruits):
    with pytest.raises(ValueError, match="label_to_category"):
        predict(HalfBoxModel(), overfit_frames(fruits, 1).images, "cpu")


def test_reloaded_checkpoint_predicts_the_same(fruits, tmp_path):
    from models.detectors import build_model

    torch.manual_seed(0)
    model = build_model("maskrcnn_mobilenet_v2_fpn", 4, True, 160).eval()
    meta = {
        "model": "maskrcnn_mobilenet_v2_fpn",
        "num_classes": 4,
        "image_size": 160,
        "pretrained_backbone": model.backbone_pretrained,
        "label_to_category": {"1": 1, "2": 2, "3": 3},
    }
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, meta)
    loaded = load_checkpoint(path, "cpu")
    assert loaded.label_to_category == {1: 1, 2: 2, 3: 3} and loaded.meta["image_size"] == 160
    images = overfit_frames(fruits, 2).images
    kwargs = dict(score_threshold=0.0, max_side=160, batch_size=2)
    expected = predict(model, images, "cpu", label_to_category=loaded.label_to_category, **kwargs)
    got = predict(loaded.model, images, "cpu", **kwargs)
    assert len(expected) > 0
    assert got == expected
    assert {r["category_id"] for r in got} <= {1, 2, 3}
    boxes = np.array([r["bbox"] for r in got])
    assert boxes[:, 0].min() >= 0 and (boxes[:, 0] + boxes[:, 2]).max() <= 800


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"meta": {"model": object()}}, path)
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported"):
        load_checkpoint(path)
