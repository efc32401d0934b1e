"""Label quality: class balance, any object metric's distribution, object crops sorted by a metric,
and per-dataset label statistics (the annotator view when each dataset is one annotator's work).

URL: ``?metric=object_area_relative&lo=0&hi=0.001&sort=annotation_duplicate_iou&order=desc&page=1
&issue=tiny_objects&classes=demo|1&logc=1`` reproduces the view.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import streamlit as st

from metrics import registry
from pages import gallery, mislabelled
from pages.state import init_state, query_list, reader, require_datasets, set_query, write_url
from store import gallery_queries as gq

PREFIX = "lq"
DEFAULT_METRIC = "object_area_relative"

st.title(":material/label: Label quality")
project_reader = reader()
datasets = require_datasets()

# ----- class distribution ---------------------------------------------------------------------------------------
st.subheader("Class distribution")
distribution = gallery.cached("class_distribution", project_reader, list(datasets))
init_state(f"{PREFIX}_logc", "logc", lambda raw: raw == "1", False)
log_counts = st.toggle("Log scale", key=f"{PREFIX}_logc", help="Shows rare classes next to common ones.")
if distribution.empty:
    st.info("No categories in the chosen datasets.")
else:
    order = distribution.groupby("category")["objects"].sum().sort_values(ascending=False).index.tolist()
    figure = px.bar(
        distribution,
        x="category",
        y="objects",
        color="dataset",
        barmode="group",
        log_y=log_counts,
        category_orders={"category": order},
        color_discrete_map=gallery.dataset_colours(project_reader.datasets()),
        labels={"objects": "objects (log)" if log_counts else "objects"},
    )
    figure.add_hline(
        y=gq.SMALL_CLASS_OBJECTS,
        line_dash="dot",
        line_color="#b00000",
        annotation_text=f"{gq.SMALL_CLASS_OBJECTS} objects",
        annotation_position="top left",
    )
    figure.update_layout(
        height=340,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_tickangle=-45 if len(order) > 12 else 0,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
    )
    st.plotly_chart(figure, key=f"{PREFIX}_classes_chart", width="stretch")
    summary = gq.imbalance_summary(distribution)
    table = pd.DataFrame.from_dict(summary, orient="index").reset_index(names="dataset")
    table["largest_smallest_ratio"] = table["largest_smallest_ratio"].map(
        lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 1)
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "classes_under_10": st.column_config.NumberColumn(
                f"classes under {gq.SMALL_CLASS_OBJECTS}",
                help="Used classes with fewer than 10 objects: too few to learn or evaluate.",
            ),
            "largest_smallest_ratio": st.column_config.NumberColumn(
                "largest / smallest",
                help="Objects in the largest class divided by those in the smallest used class.",
            ),
        },
    )

# ----- object metric distribution --------------------------------------------------------------------------------
names = gq.metric_level_names(project_reader, "object")
if not names:
    st.info("No object metrics in this project yet.")
    st.stop()
issue = gallery.url_issue("object")

st.divider()
st.subheader("Object metrics")
metric, chosen = gallery.metric_with_distribution(
    PREFIX, project_reader, names, DEFAULT_METRIC, "object", datasets, issue
)

# ----- crop gallery -----------------------------------------------------------------------------------------------
st.divider()
st.subheader("Objects")
root = str(project_reader.project.root)
class_options = [
    f"{row.dataset}|{int(row.category_id)}"
    for row in distribution[distribution["objects"] > 0].itertuples(index=False)
]
class_names = {
    f"{row.dataset}|{int(row.category_id)}": f"{row.category} ({row.dataset})"
    for row in distribution.itertuples()
}
if f"{PREFIX}_classes" not in st.session_state:
    st.session_state[f"{PREFIX}_classes"] = [c for c in query_list("classes") if c in class_options]
st.session_state[f"{PREFIX}_classes"] = [
    c for c in st.session_state[f"{PREFIX}_classes"] if c in class_options
]
classes = st.multiselect(
    "Only these classes",
    class_options,
    key=f"{PREFIX}_classes",
    format_func=lambda c: class_names.get(c, c),
    help="Empty: every class.",
)
sort_metric, descending = gallery.sort_controls(PREFIX, names, metric)
spec = registry.specs_by_name().get(sort_metric)
if spec is not None:
    st.caption(
        f"Worst first for `{sort_metric}`: **{'descending' if spec.direction == 'lower_better' else 'ascending'}**"
        f" ({spec.direction_text}). E.g. smallest `object_area_relative` ascending, most overlapping "
        "`annotation_duplicate_iou` descending."
    )
tag_name, tag_keys, tag_filter = gallery.tag_controls(PREFIX, root)
category_ids = [(c.rpartition("|")[0], int(c.rpartition("|")[2])) for c in classes] or None
gallery_filter = gallery.range_filter("object", datasets, metric, chosen, issue, tag_keys, category_ids)
notes = [
    f"`{metric}` in [{chosen[0]:.4g}, {chosen[1]:.4g}]" if chosen else "",
    issue or "",
    f"{len(classes)} classes" if classes else "",
    f"tag {tag_filter}" if tag_filter else "",
]
page, size = gallery.gallery_grid(
    PREFIX, project_reader, gallery_filter, notes, sort_metric, descending, tag_name
)

mislabelled.render(project_reader, datasets)  # embedding-based label errors (pages/mislabelled.py)

# ----- per-dataset statistics ---------------------------------------------------------------------------------------
st.divider()
st.subheader("Label statistics per dataset")
st.caption(
    "Mean of every object metric per dataset. When each dataset is one annotator's (or one source's) work, "
    "this is the annotator comparison: larger duplicate IoU, more invalid geometry or lower label quality "
    "point at careless labelling."
)
means = gallery.cached("dataset_metric_means", project_reader, list(datasets), "object")
counts = gallery.cached("dataset_counts", project_reader)
counts = counts[counts["dataset"].isin(datasets)][["dataset", "images", "objects", "categories_used"]]
stats = counts.merge(means, on="dataset", how="left")
stats.insert(3, "objects_per_image", (stats["objects"] / stats["images"].where(stats["images"] > 0)).round(2))
st.dataframe(
    stats,
    hide_index=True,
    width="stretch",
    column_config={
        name: st.column_config.NumberColumn(f"mean {name}", help=gallery.metric_help(name), format="%.4g")
        for name in stats.columns
        if name in names
    },
)

write_url(PREFIX, metric, chosen, sort_metric, descending, page, size, issue, tag_filter)
set_query(classes=classes or None, logc="1" if log_counts else None)
gallery.saved_views("pages/label_quality.py", PREFIX, root)
gallery.show_detail_from_url((gallery_filter, sort_metric, descending))
