"""Acceptance with the label-error yardstick: errors planted into real datasets, a detector's output made
from the clean labels, the whole product path (import with embeddings, import predictions), then the
AUROC of ``label_issue`` per planted kind and of ``missing_label`` for dropped labels.

Floors sit a little under the figures in docs/BENCHMARKS.md (seed 0) so that a regression fails
while the CPU's float noise in the embeddings does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.store.test_label_issues import planted_project, yardstick

FLOORS = {
    "fruits_nuts": {"swap": 0.98, "jitter": 0.80, "spurious": 0.97, "any": 0.94, "drop": 0.90},
    "blood_cells": {"swap": 0.99, "jitter": 0.95, "spurious": 0.98, "any": 0.975, "drop": 0.90},
}


def _scores(path: Path, level: str, key: str, rows: pd.DataFrame, column: str) -> Path:
    frame = pd.DataFrame({key: rows[key if key != "id" else "object_id"], column: -rows[column].fillna(0)})
    path.write_text(json.dumps({"level": level, "scores": frame.to_dict("records")}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["fruits_nuts", "blood_cells"])
def test_label_issue_beats_the_floors_on_planted_errors(dataset: str, tmp_path: Path) -> None:
    project, truth, _ = planted_project(dataset, tmp_path, 0, "d", "--embeddings", predictions=True)
    folder = project / "datasets" / "d"
    meta = json.loads((folder / "label_issues" / "meta.json").read_text())
    assert meta["evidence"] == ["geometry", "embeddings", "predictions"]
    objects = pd.read_parquet(folder / "label_issues" / "objects.parquet")
    images = pd.read_parquet(folder / "metrics" / "image__missing_label.parquet").rename(
        columns={"value": "missing_label"}
    )
    figures = {}
    for path in (
        _scores(tmp_path / "objects.json", "annotation", "id", objects, "label_issue"),
        _scores(tmp_path / "images.json", "image", "image_id", images, "missing_label"),
    ):
        result = yardstick("label_error_auc.py", scores=path, truth=truth)
        for kinds in result["metrics"].values():
            for kind, values in kinds.items():
                if path.name == "objects.json" or kind == "drop":
                    figures[kind] = values["auroc"]
    print(dataset, figures)
    for kind, floor in FLOORS[dataset].items():
        assert figures[kind] >= floor, (kind, figures)
