"""Compare datasets: two datasets side by side on every metric, ranked by how much they differ.

The motivating case is TACO's official split against the crowd-sourced one: the ranking shows at
once which image and object properties the two disagree on (KS statistic: the largest gap between
the two cumulative distributions, 0 = same, 1 = disjoint).

URL: ``?cmp_a=DATASET&cmp_b=DATASET&cmp_level=object&cmp_top=12`` reproduces the view (``cmp_top``
left out: the first DEFAULT_CHARTS charts).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from metrics import registry
from pages.state import query_value, reader, set_query
from store import page_summaries
from store.dataset_compare import SAMPLE_LIMIT
from store.gallery_queries import data_signature
from store.queries import ProjectReader

COLOURS = ("#1f77b4", "#ff7f0e")
# Distribution charts drawn on first view: each Plotly chart costs chromium about 0.15-0.2 CPU-s per
# visit, so twelve made this the slowest page to reload (docs/BENCHMARKS.md, "App in a browser"). Four
# (the most different metrics, two rows) show the headline; "Charts" draws up to 60, the table lists all.
DEFAULT_CHARTS = 4


@st.cache_data(show_spinner="Comparing every metric…", max_entries=8)
def _comparison(root: str, a: str, b: str, signature: tuple, _project_reader: ProjectReader) -> pd.DataFrame:
    """The ranking with each metric's histograms (store/dataset_compare.py): in memory until the
    project's files change, and on disk in the project's summary cache, so a fresh server process
    neither re-samples the metric files nor imports scipy for a pair already compared."""
    return page_summaries.summary(_project_reader, "comparison", a, b)


@st.cache_data(show_spinner=False, max_entries=8)
def _counts_and_classes(
    root: str, a: str, b: str, signature: tuple, _project_reader: ProjectReader
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dataset counts and objects per class of A and B, from the same summary cache."""
    return (
        page_summaries.summary(_project_reader, "dataset_counts"),
        page_summaries.summary(_project_reader, "class_distribution", [a, b]),
    )


st.title(":material/compare: Compare datasets")
project_reader = reader()
datasets = project_reader.datasets()
if len(datasets) < 2:
    st.info(
        "Comparing needs two datasets in the project. Import another with "
        "`cocolens import coco --images DIR --annotations FILE --project DIR --dataset NAME`."
    )
    st.stop()

wanted_a = query_value("cmp_a")
wanted_b = query_value("cmp_b")
left, middle, right, far = st.columns([2, 2, 1, 1])
with left:
    a = st.selectbox(
        "Dataset A", datasets, index=datasets.index(wanted_a) if wanted_a in datasets else 0, key="cmp_a"
    )
others = [d for d in datasets if d != a]
with middle:
    b = st.selectbox(
        "Dataset B", others, index=others.index(wanted_b) if wanted_b in others else 0, key="cmp_b"
    )
level_options = ["all", "image", "object"]
wanted_level = query_value("cmp_level", "all")
with right:
    level = st.selectbox(
        "Level", level_options, index=level_options.index(wanted_level) if wanted_level in level_options else 0,
        key="cmp_level", help="Image metrics (one value per image) or object metrics (one per label).",
    )  # fmt: skip
with far:
    top = st.number_input(
        "Charts", min_value=1, max_value=60, value=int(query_value("cmp_top") or DEFAULT_CHARTS), key="cmp_top",
        help="How many of the most different metrics to draw (the table lists them all).",
    )  # fmt: skip
set_query(
    cmp_a=a,
    cmp_b=b,
    cmp_level=None if level == "all" else level,
    cmp_top=None if top == DEFAULT_CHARTS else top,
)

root = str(project_reader.project.root)
signature = data_signature(project_reader)
table = _comparison(root, a, b, signature, project_reader)
if table.empty:
    st.info("No metric values in these datasets yet.")
    st.stop()
if level != "all":
    table = table[table["level"] == level].reset_index(drop=True)
specs = registry.specs_by_name()


def _meaning(metric: str) -> str:
    spec = specs.get(metric)
    return spec.help_text() if spec else "Custom metric (no description registered)."


counts, classes = _counts_and_classes(root, a, b, signature, project_reader)
counts = counts.set_index("dataset")
summary_cols = st.columns(2)
for column, name, colour in zip(summary_cols, (a, b), COLOURS, strict=True):
    row = counts.loc[name] if name in counts.index else None
    with column:
        st.markdown(f"<span style='color:{colour}'>■</span> **{name}**", unsafe_allow_html=True)
        if row is not None:
            st.caption(
                f"{int(row['images']):,} images · {int(row['objects']):,} objects · "
                f"{int(row['categories_used'])}/{int(row['categories'])} classes used · "
                f"{int(row['missing_images']):,} images missing"
            )

st.subheader("Metrics ranked by how much they differ")
st.caption(
    "KS = two-sample Kolmogorov–Smirnov statistic (scipy `ks_2samp`): the largest vertical gap between the two "
    "cumulative distributions, from 0 (identical) to 1 (no overlap); unit-free, so metrics of any scale rank "
    "together. The p-value says whether a gap this large could be chance; with thousands of values almost any "
    f"gap is 'significant', so read the KS size. Above {SAMPLE_LIMIT:,} values per dataset a fixed random "
    "sample is used (n columns show how many)."
)
shown = table.assign(meaning=table["metric"].map(_meaning))
st.dataframe(
    shown[
        [
            "metric",
            "level",
            "ks",
            "p_value",
            "mean_a",
            "mean_b",
            "median_a",
            "median_b",
            "n_a",
            "n_b",
            "meaning",
        ]
    ],
    hide_index=True,
    width="stretch",
    column_config={
        "ks": st.column_config.ProgressColumn("KS", min_value=0.0, max_value=1.0, format="%.3f"),
        "p_value": st.column_config.NumberColumn("p-value", format="%.2e"),
        "mean_a": st.column_config.NumberColumn(f"mean {a}", format="%.4g"),
        "mean_b": st.column_config.NumberColumn(f"mean {b}", format="%.4g"),
        "median_a": st.column_config.NumberColumn(f"median {a}", format="%.4g"),
        "median_b": st.column_config.NumberColumn(f"median {b}", format="%.4g"),
        "n_a": st.column_config.NumberColumn(f"n {a}"),
        "n_b": st.column_config.NumberColumn(f"n {b}"),
        "meaning": st.column_config.TextColumn("meaning", width="large"),
    },
)

st.subheader("Distributions")
drawn = min(int(top), len(table))
st.caption(
    f"<span style='color:{COLOURS[0]}'>■</span> {html.escape(a)} · <span style='color:{COLOURS[1]}'>■</span> "
    f"{html.escape(b)}. Normalised histograms on common bins: each bar is the fraction of that dataset's values "
    f"in the bin. The {drawn} most different of {len(table)} metrics; **Charts** (top right) draws more.",
    unsafe_allow_html=True,
)
for index, row in enumerate(table.head(drawn).itertuples(index=False)):
    if index % 2 == 0:  # one row of columns per pair, so a long caption does not push the next chart down
        chart_cols = st.columns(2)
    metric = row.metric
    edges, density_a, density_b = (
        np.asarray(v, dtype=np.float64) for v in (row.edges, row.density_a, row.density_b)
    )
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    figure = go.Figure()
    for name, density, colour in ((a, density_a, COLOURS[0]), (b, density_b, COLOURS[1])):
        figure.add_bar(x=centres, y=density, width=width, name=name, marker_color=colour, opacity=0.55)
    spec = specs.get(metric)
    unit = f" ({spec.unit})" if spec and spec.unit else ""
    ks_text = "n/a" if pd.isna(row.ks) else f"{row.ks:.3f}"
    figure.update_layout(
        barmode="overlay", height=260, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"{metric} — KS {ks_text}", "font": {"size": 14}},
        xaxis_title=f"{metric}{unit}", yaxis_title="fraction",
        showlegend=False,  # the caption above names the colours; under the chart the legend hid the axis title
    )  # fmt: skip
    with chart_cols[index % 2]:
        st.plotly_chart(figure, width="stretch", key=f"cmp_chart_{metric}")
        st.caption(f"**{metric}** ({row.level}): {_meaning(metric)}")

st.subheader("Classes")
st.caption("Share of each dataset's objects per class name; the classes whose share differs most first.")
shares = classes[classes["objects"] > 0].rename(columns={"category": "class"})[
    ["class", "dataset", "objects"]
]
if len(shares):
    wide = shares.pivot_table(index="class", columns="dataset", values="objects", fill_value=0)
    wide = wide.reindex(columns=[a, b], fill_value=0)
    fractions = wide / wide.sum().replace(0, 1)
    fractions["difference"] = (fractions[a] - fractions[b]).abs()
    fractions = fractions.sort_values("difference", ascending=False).head(25)
    figure = go.Figure()
    for name, colour in ((a, COLOURS[0]), (b, COLOURS[1])):
        figure.add_bar(x=fractions.index, y=fractions[name], name=name, marker_color=colour)
    figure.update_layout(
        barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_title="share of objects",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},  # above: below, it hid the class names
    )  # fmt: skip
    st.plotly_chart(figure, width="stretch", key="cmp_classes")
