"""Summary: what is in the project and what looks wrong, at a glance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from metrics import registry
from metrics.outliers import MODERATE_TEXT, SEVERE_TEXT
from pages.state import reader, require_datasets
from store import issue_catalogue, page_summaries
from store.gallery_queries import data_signature
from store.queries import ProjectReader
from store.report import SUMMARY_KEYS

PAGES_DIR = Path(__file__).resolve().parent


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
        entry = issue_catalogue.BY_NAME.get(issue)
        page = entry.page if entry else "data_quality"
        link = entry.gallery_link if entry else {"issue": issue}
        st.metric(
            issue.replace("_", " ").capitalize(),
            f"{count:,}",
            help=issue_catalogue.summary_help(entry) if entry else "",
        )
        if count and (PAGES_DIR / f"{page}.py").is_file():
            st.page_link(f"pages/{page}.py", label="open gallery →", query_params=link)

st.subheader("Metrics")
st.caption(
    f"Every metric with its distribution summary and IQR outliers (moderate: {MODERATE_TEXT}; severe: {SEVERE_TEXT})."
)
if len(summary):
    summary = summary.assign(**registry.explain(summary["metric"]))
    table = summary[["metric", "level", *SUMMARY_KEYS, "range", "direction", "meaning"]]
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
