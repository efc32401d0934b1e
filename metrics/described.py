"""Specs of metrics whose values are produced outside the per-image / per-table passes.

Embedding scores come from ``metrics.label_quality`` (declared there, imported here so the app
can explain them without computing anything); prediction-level values come from matching.
"""

from __future__ import annotations

import metrics.label_errors  # noqa: F401  (registers label_issue, missing_label)
import metrics.label_quality  # noqa: F401  (registers annotation_quality, label_confidence, image_uniqueness)
from metrics.registry import describe_score

PREDICTION_SCORES = {  # name: (direction, description)
    "prediction_score": (
        "neutral",
        "The model's confidence for the prediction, as given in the results file.",
    ),
    "prediction_best_iou": (
        "higher_better",
        "Highest IoU of the prediction with any label of its class in its image (0 when none overlaps).",
    ),
    "prediction_tp_50": (
        "higher_better",
        "1 when the prediction is a true positive at IoU 0.5 under COCO matching (score order, greedy).",
    ),
}
for name, (direction, description) in PREDICTION_SCORES.items():
    describe_score(name, "prediction", "prediction", direction, description)
