import json

import pytest
import torch
from torch import nn

from models.data import CocoDetectionDataset, collate_fn
from models.train import STAT_NAMES, evaluate, fit, overfit_frames, train_one_epoch
from tests.models.tiny_configs import light_config


class EchoModel(nn.Module):
    """Returns given outputs in order: stands in for a detector in evaluate()."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, images):
        return [self.outputs.pop(0) for _ in images]


def _loader(dataset, batch_size=2):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn)


def _perfect(target, score=0.9):
    n = len(target["boxes"])
    return {
        "boxes": target["boxes"].clone(),
        "labels": target["labels"].clone(),
        "scores": torch.full((n,), score),
        "masks": target["masks"][:, None].float(),
    }


def test_evaluate_scores_ground_truth_as_perfect_and_nothing_as_zero(fruits):
    ds = CocoDetectionDataset(*overfit_frames(fruits, 3), max_side=200, train=False)
    assert int(ds[0][1]["image_id"]) == 0  # image id 0 is valid COCO and must count
    targets = [ds[i][1] for i in range(len(ds))]
    stats = evaluate(EchoModel(_perfect(t) for t in targets), _loader(ds), torch.device("cpu"))
    assert set(stats) == {"bbox", "segm"}
    for iou_type in ("bbox", "segm"):
        assert tuple(stats[iou_type]) == STAT_NAMES
        assert stats[iou_type]["AP"] == pytest.approx(1.0)
        assert stats[iou_type]["AR100"] == pytest.approx(1.0)

    empty = {
        "boxes": torch.zeros((0, 4)),
        "labels": torch.zeros(0, dtype=torch.int64),
        "scores": torch.zeros(0),
        "masks": torch.zeros((0, 1, 150, 200)),
    }
    stats = evaluate(EchoModel([empty] * len(ds)), _loader(ds), torch.device("cpu"))
    assert all(v == 0.0 for v in stats["bbox"].values())


def test_evaluate_sees_wrong_labels_and_shifted_masks(fruits):
    ds = CocoDetectionDataset(*overfit_frames(fruits, 2), max_side=200, train=False)
    targets = [ds[i][1] for i in range(len(ds))]
    outputs = []
    for t in targets:
        out = _perfect(t)
        out["masks"] = torch.roll(out["masks"], shifts=40, dims=-1)  # boxes right, masks off
        outputs.append(out)
    stats = evaluate(EchoModel(outputs), _loader(ds), torch.device("cpu"))
    assert stats["bbox"]["AP"] == pytest.approx(1.0)
    assert stats["segm"]["AP"] < 0.2


def _tiny_config(**changes):
    values = dict(pretrained_backbone=True, batch_size=2, epochs=2, overfit_images=2, lr=1e-4, log_every=1)
    return light_config(**{**values, **changes})


def test_train_one_epoch_reports_losses_and_can_be_stopped(fruits):
    from models.detectors import build_model

    ds = CocoDetectionDataset(*overfit_frames(fruits, 2), max_side=128, train=True)
    model = build_model("maskrcnn_mobilenet_v2_fpn", ds.num_classes, False, 128)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    steps = []
    result = train_one_epoch(model, optimizer, _loader(ds, 1), torch.device("cpu"), None, 1, steps.append)
    assert result["steps"] == 2 and not result["stopped"]
    assert {"loss", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness"} <= set(
        result["losses"]
    )
    assert [s["step"] for s in steps] == [1, 2] and steps[0]["lr"] == 1e-4
    stopped = train_one_epoch(model, optimizer, _loader(ds, 1), torch.device("cpu"), should_stop=lambda: True)
    assert stopped == {"steps": 0, "stopped": True, "losses": {}}


def test_fit_keeps_one_loadable_checkpoint_and_reports_progress(fruits, tmp_path):
    events = []
    summary = fit(_tiny_config(), fruits, fruits, tmp_path, events.append, lambda: False)
    assert summary["epochs_run"] == 2 and not summary["stopped"]
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    assert summary["checkpoint"] == str(tmp_path / "best.pt")
    payload = torch.load(summary["checkpoint"], weights_only=True)
    meta = payload["meta"]
    assert meta["model"] == "maskrcnn_mobilenet_v2_fpn" and meta["num_classes"] == 4
    assert meta["label_to_category"] == {"1": 1, "2": 2, "3": 3} and meta["pretrained_backbone"] is True
    assert meta["epoch"] == summary["best_epoch"]
    json.dumps(meta)
    kinds = [e["event"] for e in events]
    assert kinds.count("epoch") == 2 and kinds[-1] == "done" and "step" in kinds
    epoch_event = next(e for e in events if e["event"] == "epoch")
    assert set(epoch_event["val"]["segm"]) == set(STAT_NAMES) and epoch_event["eta_s"] >= 0
    json.dumps([{k: v for k, v in e.items()} for e in events])


def test_fit_stops_when_asked(fruits, tmp_path):
    events = []
    summary = fit(
        _tiny_config(epochs=5, batch_size=1),
        fruits,
        fruits,
        tmp_path,
        events.append,
        lambda: any(e["event"] == "step" for e in events),
    )
    assert summary["stopped"] and summary["epochs_run"] == 0 and summary["checkpoint"] is None
    assert sum(e["event"] == "step" for e in events) == 1
