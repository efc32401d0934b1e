"""Controls and texts shared by the model pages: model, IoU type and IoU threshold pickers (kept in
the URL as ``model``, ``iou``, ``thr``), and the one-line explanation of each TP / FP / FN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from metrics.error_reasons import OVERLAP_MIN_IOU
from metrics.registry import finite_or_none
from pages.state import init_choice, reader, selected_datasets, set_query
from store import model_queries as mq
from store.queries import ProjectReader

THRESHOLDS = [int(t) / 100 for t in mq.THRESHOLD_TAGS]


@dataclass(frozen=True)
class ModelChoice:
    model: str
    dataset: str
    iou_type: str
    tag: str  # '50' … '95'

    @property
    def threshold(self) -> float:
        return int(self.tag) / 100


def pick_model(prefix: str, with_threshold: bool = True) -> ModelChoice | None:
    """Model (of the datasets picked in the sidebar), IoU type and IoU threshold; None when there is no model."""
    project_reader: ProjectReader = reader()
    models = mq.models_table(project_reader)
    shown = models[models["dataset"].isin(selected_datasets())]
    if shown.empty:
        shown = models
    if shown.empty:
        st.info(
            "No model in this project yet. Import predictions with "
            "`cocolens import predictions FILE --project DIR --model NAME`, or run `cocolens demo`."
        )
        return None
    names = shown["model"].tolist()
    init_choice(f"{prefix}_model", "model", str, names, names[0])
    columns = st.columns([3, 1, 2] if with_threshold else [3, 1])
    by_name = shown.set_index("model")
    model = columns[0].selectbox(
        "Model",
        names,
        key=f"{prefix}_model",
        format_func=lambda m: (
            f"{m} (on {by_name.loc[m, 'dataset']}, {by_name.loc[m, 'predictions']:,} predictions)"
        ),
        help="Models whose dataset is picked in the sidebar. Import more with `cocolens import predictions`.",
    )
    if by_name.loc[model, "stale"]:
        st.warning(
            f"Dataset '{by_name.loc[model, 'dataset']}' was imported again after {model}'s predictions "
            "were matched: the figures below describe labels that no longer exist. Import the "
            f"predictions again: `cocolens import predictions FILE --project DIR --model {model}`.",
            icon=":material/warning:",
        )
    iou_types = list(by_name.loc[model, "iou_types"])
    init_choice(f"{prefix}_iou", "iou", str, iou_types, iou_types[0])
    iou_type = columns[1].radio(
        "IoU type",
        iou_types,
        key=f"{prefix}_iou",
        horizontal=True,
        help="bbox: boxes are compared; segm: masks are compared (only when predictions carry masks).",
    )
    tag = "50"
    if with_threshold:
        init_choice(f"{prefix}_thr", "thr", lambda raw: int(raw) / 100, THRESHOLDS, 0.5)
        threshold = columns[2].select_slider(
            "IoU threshold",
            THRESHOLDS,
            key=f"{prefix}_thr",
            format_func=lambda v: f"{v:.2f}",
            help="A prediction is a true positive when it overlaps an unmatched label of its class at least this much "
            "(COCO matching). Everything threshold-dependent on the page follows it; all thresholds are stored, "
            "so changing it recomputes nothing.",
        )
        tag = str(int(round(threshold * 100)))
    set_query(model=model, iou=iou_type, thr=tag if with_threshold else None)
    return ModelChoice(model, str(by_name.loc[model, "dataset"]), iou_type, tag)


def outcome_text(row: Any, outcome: str, threshold: float) -> str:
    """Why a card is where it is, in one line (e.g. "class confusion: overlaps a 'fig' label, IoU 0.62")."""
    iou = finite_or_none(getattr(row, "iou", None))
    iou_text = f"{iou:.2f}" if iou is not None else "—"
    other = getattr(row, "related_category", None)
    other = (
        None
        if other is None or other is pd.NA or (isinstance(other, float) and math.isnan(other))
        else str(other)
    )
    category = str(getattr(row, "category", ""))
    score = finite_or_none(getattr(row, "score", None))
    if outcome == "tp":
        return f"true positive: IoU {iou_text} with its '{category}' label, score {score:.2f}"
    reason = str(getattr(row, "reason", "") or "")
    texts = {
        "duplicate": f"duplicate: a higher-scored '{category}' prediction already matched this label (IoU {iou_text})",
        "class_confusion": f"class confusion: overlaps a '{other}' label, IoU {iou_text}",
        "localisation": f"localisation: right class, but IoU {iou_text} < {threshold:.2f} with the '{category}' label",
        "class_and_localisation": f"class and localisation: only a '{other}' label overlaps, IoU {iou_text}",
        "background": f"background: no label overlaps (IoU < {OVERLAP_MIN_IOU:g}) — a hallucination or a missing label",
        "misclassified": f"misclassified: predicted as '{other}'"
        + (f" (score {score:.2f})" if score is not None else "")
        + f", IoU {iou_text}",
        "mislocalised": f"mislocalised: the closest '{category}' prediction reaches only IoU {iou_text}",
        "missed": f"missed: no '{category}' prediction came near",
    }
    return texts.get(reason, reason or outcome)
