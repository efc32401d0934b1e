"""Summary: what is in the project and what looks wrong, at a glance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from metrics import registry
from pages.state import reader, require_datasets
from store import page_summaries
from store.gallery_queries import data_signature
from store.queries import ProjectReader
from store.report import ISSUE_THRESHOLDS, issue_operator

ISSUE_HELP = {
    "exact_duplicate_images": (
        "Images whose decoded pixels are identical to another image's.",
        "data_quality",
    ),
    "embedding_near_duplicate_groups": (
        "Groups of images whose MobileNetV2 embeddings are within cosine distance 0.02 "
        "(computed by `cocolens metrics --embeddings`).",
        "data_quality",
    ),
    "near_duplicate_groups": (
        "Groups of images whose perceptual hashes are within a small Hamming radius.",
        "data_quality",
    ),
    "missing_images": (
        "Images listed in the annotations but not found on disk; geometry metrics still computed.",
        "data_quality",
    ),
    "unreadable_images": (
        "Files that exist but could not be decoded (corrupt, truncated, unsupported).",
        "data_quality",
    ),
    "classes_under_10_objects": (
        "Classes with fewer than 10 labelled objects: too few to learn or to evaluate.",
        "label_quality",
    ),
}

PAGES_DIR = Path(__file__).resolve().parent
LABEL_ERROR_METRICS = ("label_issue", "missing_label")


@st.cache_data(show_spinner=False, max_entries=32)
def _summaries(root: str, signature: tuple, datasets: tuple[str, ...], _reader: ProjectReader):
    """Dataset counts, issue counts and the metric table: in memory until the project's files change,
    read from the project's summary cache (pre-computed by import / metrics) instead of scanning every
    metric value again in each new server process."""
    return (
        page_summaries.summary(_reader, "dataset_counts"),
        page_summaries.summary(_reader, "issue_counts", list(datasets)),
        page_summaries.summary(_reader, "metric_summary", list(datasets)),
    )


st.title(":material/dashboard: Summary")
project_reader = reader()
datasets = require_datasets()

counts, issues, summary = _summaries(
    str(project_reader.project.root), data_signature(project_reader), tuple(datasets), project_reader
)
counts = counts[counts["dataset"].isin(datasets)]
st.subheader("Datasets")
st.dataframe(
    counts.rename(columns=lambda c: c.replace("_", " ")),
    hide_index=True,
    width="stretch",
)

st.subheader("Issues")
st.caption("Each detected problem with its count; open the gallery to see exactly those items.")
columns = st.columns(4)
for index, (issue, count) in enumerate(issues.items()):
    with columns[index % 4]:
        link = {"issue": issue}
        if issue in ISSUE_THRESHOLDS:
            metric, threshold = ISSUE_THRESHOLDS[issue]
            below = issue_operator(issue) == "<"
            help_text = f"Counted: `{metric}` {'below' if below else 'above'} {threshold:g}. " + (
                registry.get(metric).help_text() if metric in registry.specs_by_name() else ""
            )
            page = (
                "label_quality"
                if registry.specs_by_name().get(metric) and registry.get(metric).level == "object"
                else "data_quality"
            )
            # The gallery shows the metric it counts, the most extreme items first.
            link.update(metric=metric, sort=metric, order="asc" if below else "desc")
            if metric in LABEL_ERROR_METRICS:  # the review queue, not a metric gallery
                page, link = "label_errors", {}
        else:
            help_text, page = ISSUE_HELP.get(issue, ("", "data_quality"))
        st.metric(issue.replace("_", " ").capitalize(), f"{count:,}", help=help_text)
        if count and (PAGES_DIR / f"{page}.py").is_file():
            st.page_link(f"pages/{page}.py", label="open gallery →", query_params=link)

st.subheader("Metrics")
st.caption(
    "Every metric with its distribution summary and IQR outliers (moderate: 1.5–2.5×IQR beyond the quartiles; severe: beyond 2.5×IQR)."
)
summary = summary.copy()
specs = registry.specs_by_name()
if len(summary):
    summary["range"] = summary["metric"].map(lambda m: specs[m].range_text if m in specs else "")
    summary["direction"] = summary["metric"].map(lambda m: specs[m].direction_text if m in specs else "")
    summary["meaning"] = summary["metric"].map(
        lambda m: specs[m].description if m in specs else "custom metric"
    )
    table = summary[
        [
            "metric",
            "level",
            "count",
            "mean",
            "median",
            "min",
            "max",
            "moderate_outliers",
            "severe_outliers",
            "range",
            "direction",
            "meaning",
        ]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"meaning": st.column_config.TextColumn(width="large")},
    )
else:
    st.info("No metric values yet.")

models = project_reader.models()
if models:
    st.subheader("Models")
    rows = []
    for name in models:
        meta = project_reader.project.model_meta(name)
        rows.append({"model": name, "dataset": meta.get("dataset"), "predictions": meta.get("predictions")})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
