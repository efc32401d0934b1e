"""Compare datasets: two datasets side by side on every metric, ranked by how much they differ.

The motivating case is TACO's official split against the crowd-sourced one: the ranking shows at
once which image and object properties the two disagree on (KS statistic: the largest gap between
the two cumulative distributions, 0 = same, 1 = disjoint).

URL: ``?cmp_a=DATASET&cmp_b=DATASET&cmp_level=object&cmp_top=12`` reproduces the view.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from metrics import registry
from metrics.distribution_compare import compare, rank, shared_histograms
from pages.state import query_value, reader, set_query
from store.filters import metric_levels, sql_literal

# Values per metric and dataset kept for the KS test and histograms: above this a seeded random
# sample is used. With 20,000 values a side, sampling moves KS by less than ~0.014 (the 95 % critical
# value 1.36·sqrt(2/20000)), far below the gaps worth ranking, and a 1M-object page stays under 2 s.
SAMPLE_LIMIT = 20_000
COLOURS = ("#1f77b4", "#ff7f0e")


def _signature(root: str, datasets: tuple[str, ...]) -> tuple:
    """Changes when a dataset or its metric files are rewritten: the cache key for sampled values."""
    from pathlib import Path

    out = []
    for name in datasets:
        folder = Path(root) / "datasets" / name
        metrics = folder / "metrics"
        out.append((name, folder.stat().st_mtime_ns if folder.exists() else 0,
                    metrics.stat().st_mtime_ns if metrics.exists() else 0))  # fmt: skip
    return tuple(out)


def _sampled_values(project_reader, a: str, b: str) -> dict[tuple[str, str], np.ndarray]:
    """(dataset, metric) → values, each capped near SAMPLE_LIMIT by a seeded Bernoulli sample of rows.

    Reads each metric file (``datasets/NAME/metrics/LEVEL__METRIC.parquet``) alone and only its value
    column: at 1M objects this costs a third of the CPU of a hash sample over the long view.
    """
    import pyarrow.parquet as pq

    out: dict[tuple[str, str], np.ndarray] = {}
    for dataset in (a, b):
        for path in sorted((project_reader.project.dataset_dir(dataset) / "metrics").glob("*__*.parquet")):
            metric = path.stem.partition("__")[2]
            rows = pq.ParquetFile(path).metadata.num_rows
            sample = (
                f" TABLESAMPLE {100.0 * SAMPLE_LIMIT / rows!r}% (bernoulli, 7)" if rows > SAMPLE_LIMIT else ""
            )
            cur = project_reader.cursor()
            try:
                values = cur.execute(
                    f"SELECT value FROM read_parquet({sql_literal(str(path))}){sample} WHERE value IS NOT NULL"
                ).fetchnumpy()["value"]
            finally:
                cur.close()
            if len(values):  # a metric with no values (pixels of missing images) has nothing to compare
                out[(dataset, metric)] = np.asarray(values, dtype=np.float64)
    return out


@st.cache_data(show_spinner="Comparing every metric…", max_entries=8)
def _comparison(
    root: str, a: str, b: str, signature: tuple, _project_reader
) -> tuple[dict[tuple[str, str], np.ndarray], pd.DataFrame]:
    """(sampled values per (dataset, metric), ranking table); cached per dataset pair until files change."""
    levels = metric_levels(_project_reader)
    groups = _sampled_values(_project_reader, a, b)
    empty = np.array([])
    comparisons = [
        compare(metric, groups.get((a, metric), empty), groups.get((b, metric), empty))
        for metric in sorted({metric for _, metric in groups})
    ]
    table = rank(comparisons)
    table.insert(1, "level", table["metric"].map(levels).fillna("image"))
    return groups, table


st.title("⚖️ Compare datasets")
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
        "Charts", min_value=1, max_value=60, value=int(query_value("cmp_top", "12") or 12), key="cmp_top",
        help="How many of the most different metrics to draw (the table lists them all).",
    )  # fmt: skip
set_query(cmp_a=a, cmp_b=b, cmp_level=None if level == "all" else level, cmp_top=None if top == 12 else top)

root = str(project_reader.project.root)
groups, table = _comparison(root, a, b, _signature(root, (a, b)), project_reader)
if not groups:
    st.info("No metric values in these datasets yet.")
    st.stop()
if level != "all":
    table = table[table["level"] == level].reset_index(drop=True)
specs = registry.specs_by_name()


def _meaning(metric: str) -> str:
    spec = specs.get(metric)
    return spec.help_text() if spec else "Custom metric (no description registered)."


counts = project_reader.dataset_counts().set_index("dataset")
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
st.caption(
    "Normalised histograms on common bins: each bar is the fraction of that dataset's values in the bin."
)
empty = np.array([])
chart_cols = st.columns(2)
for index, row in enumerate(table.head(int(top)).itertuples(index=False)):
    metric = row.metric
    edges, density_a, density_b = shared_histograms(
        groups.get((a, metric), empty), groups.get((b, metric), empty)
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
        xaxis_title=f"{metric}{unit}", yaxis_title="fraction", legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    with chart_cols[index % 2]:
        st.plotly_chart(figure, width="stretch", key=f"cmp_chart_{metric}")
        st.caption(f"**{metric}** ({row.level}): {_meaning(metric)}")

st.subheader("Classes")
st.caption("Share of each dataset's objects per class name; the classes whose share differs most first.")
shares = project_reader.df(
    f"""
    WITH g AS (SELECT dataset, category_id, count(*) AS objects FROM objects
               WHERE dataset IN ({sql_literal(a)}, {sql_literal(b)}) GROUP BY ALL)
    SELECT c.name AS class, g.dataset, g.objects FROM g LEFT JOIN categories c USING (dataset, category_id)
    """
)
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
        barmode="group", height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="share of objects",
        legend={"orientation": "h"},
    )  # fmt: skip
    st.plotly_chart(figure, width="stretch", key="cmp_classes")
