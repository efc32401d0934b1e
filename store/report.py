"""``cocolens report --json``: the machine-readable summary whose schema the design brief fixes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from store.queries import ProjectReader

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
SUMMARY_KEYS = ["count", "mean", "median", "min", "max", "moderate_outliers", "severe_outliers"]

# Issue thresholds over bounded scores: one place, one reason each.
ISSUE_THRESHOLDS = {
    "dark_images": ("dark_score", 0.5),  # more than half the (reduced) pixels are near-black
    "light_images": ("light_score", 0.5),  # more than half the pixels are near-white
    "blurry_images": ("sharpness", 0.1),  # bounded Laplacian variance below 0.1 ≈ visibly soft
    "low_information_images": ("entropy", 4.0),  # under 4 bits of the 8 possible
    "tiny_objects": ("object_area_relative", 0.0001),  # under 0.01 % of the image
    "invalid_geometry_objects": ("invalid_geometry", 0.5),  # flag is 1
    "likely_label_errors": ("label_issue", 0.5),  # the learned label-error score: more likely wrong than not
    "images_missing_labels": ("missing_label", 0.5),  # an unlabelled object is more likely than not
}
LOW_END_METRICS = frozenset({"sharpness", "entropy", "object_area_relative"})  # issue = value below the bar


def issue_operator(issue: str) -> str:
    """'<' when the issue is its metric falling below the threshold, '>' when rising above it."""
    return "<" if ISSUE_THRESHOLDS[issue][0] in LOW_END_METRICS else ">"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def _summary_dict(row: Any) -> dict[str, Any]:
    out = {"level": row["level"]}
    for key in SUMMARY_KEYS:
        value = _clean(row[key])
        out[key] = int(value) if key in {"count", "moderate_outliers", "severe_outliers"} else value
    return out


def issue_counts(reader: ProjectReader, datasets: list[str] | None = None) -> dict[str, int]:
    """Counts of each detected problem; every one is a filter the app can open as a gallery."""
    where = ""
    params: list[Any] = []
    if datasets:
        where = f" AND dataset IN ({', '.join('?' for _ in datasets)})"
        params = list(datasets)
    issues = {
        "exact_duplicate_images": int(
            reader.scalar(f"SELECT count(*) FROM duplicates WHERE kind = 'exact'{where}", params) or 0
        ),
        "near_duplicate_groups": int(
            reader.scalar(
                f"SELECT count(DISTINCT (dataset, group_id)) FROM duplicates WHERE kind = 'near'{where}",
                params,
            )
            or 0
        ),
        "embedding_near_duplicate_groups": int(
            reader.scalar(
                f"SELECT count(DISTINCT (dataset, group_id)) FROM duplicates WHERE kind = 'embedding'{where}",
                params,
            )
            or 0
        ),
        "missing_images": int(
            reader.scalar(f"SELECT count(*) FROM images WHERE status = 'missing'{where}", params) or 0
        ),
        "unreadable_images": int(
            reader.scalar(f"SELECT count(*) FROM images WHERE status = 'unreadable'{where}", params) or 0
        ),
    }
    for issue, (metric, threshold) in ISSUE_THRESHOLDS.items():
        op = issue_operator(issue)
        issues[issue] = int(
            reader.scalar(
                f"SELECT count(*) FROM metric_values WHERE metric = ? AND value {op} ?{where}",
                [metric, threshold, *params],
            )
            or 0
        )
    small_classes = reader.scalar(
        f"SELECT count(*) FROM (SELECT dataset, category_id FROM objects WHERE true{where} "
        "GROUP BY dataset, category_id HAVING count(*) < 10)",
        params,
    )
    issues["classes_under_10_objects"] = int(small_classes or 0)
    return issues


def build_report(project_dir: str | Path) -> dict[str, Any]:
    reader = ProjectReader(project_dir)
    datasets: dict[str, Any] = {}
    for row in reader.dataset_counts().to_dict("records"):
        name = row.pop("dataset")
        datasets[name] = {k: int(v) for k, v in row.items()}
        datasets[name]["metrics"] = {}
    for _, row in reader.metric_summary(by_dataset=True).iterrows():
        if row["dataset"] in datasets:
            datasets[row["dataset"]]["metrics"][row["metric"]] = _summary_dict(row)
    metrics = {row["metric"]: _summary_dict(row) for _, row in reader.metric_summary().iterrows()}
    models: dict[str, Any] = {}
    for name in reader.models():
        meta = reader.project.model_meta(name)
        eval_path = reader.project.model_dir(name) / "eval.json"
        stats = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
        models[name] = {
            "dataset": meta.get("dataset"),
            "bbox": stats.get("bbox", {}).get("stats") if stats.get("bbox") else None,
            "segm": stats.get("segm", {}).get("stats") if stats.get("segm") else None,
        }
    return {"datasets": datasets, "metrics": metrics, "issues": issue_counts(reader), "models": models}
