"""Embeddings: a 2D map of image or object embeddings coloured by class, dataset or any metric; a lasso or
box on it fills a gallery; "More like this" lists the nearest neighbours of any image or object.

URL: ``?level=object&map=pca&colour=class&like=DATASET|IMAGE_ID|OBJECT_ID`` reproduces the view.
Vectors and maps come from ``store.embedding_store`` (computed by ``cocolens metrics --embeddings``);
maps are cached on disk per level and method, so UMAP's first-run cost (~30 s JIT) is paid once.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from pages import gallery
from pages.embedding_cards import CARD_SIDE, LEVELS, PREFIX, cards, selection_section, set_like
from pages.embedding_map import like_text, map_figure, parse_like, selected_rows
from pages.job_progress import action_panel, running_panel
from pages.mislabelled import embeddings_command, picture_paths
from pages.state import init_choice, query_value, reader, require_datasets, set_query
from store import embedding_store as es
from store import gallery_queries as gq
from store import thumbnails

METHODS = {"pca": "PCA (instant)", "umap": "UMAP (best layout; first run ~30 s)", "tsne": "t-SNE"}
LIKE_TOP = 12


def _compute_button(root: str) -> None:
    """Embeddings (then label-quality scores, near-duplicate groups, the label-error pass) computed by a
    background job: the page shows its counts and ETA and never waits on it."""
    action_panel(
        root,
        "metrics",
        "Compute embeddings now",
        ":material/memory:",
        "MobileNetV2 features of every image and object crop (about 40 crops/s on 2 CPU cores), in the "
        "background: progress and the time left show here.",
        embeddings=True,
    )


# ----- page -------------------------------------------------------------------------------------------------------

st.title(":material/scatter_plot: Embeddings")
project_reader = reader()
datasets = require_datasets()
root = str(project_reader.project.root)
ready = es.datasets_with_embeddings(project_reader.project, datasets)
missing = [d for d in datasets if d not in ready]
if missing:
    box = st.warning if not ready else st.info
    box(
        f"No embeddings yet for **{', '.join(missing)}**. This command computes them (MobileNetV2 ImageNet "
        "features of every image and object crop, then label-quality scores and near-duplicate groups):"
    )
    st.code(embeddings_command(root), language="bash")
    _compute_button(root)
    if not ready:
        st.stop()
else:
    running_panel(root, "metrics")  # a run started here (or elsewhere) still scoring: its progress

# ----- map --------------------------------------------------------------------------------------------------------
gallery.init_state(f"{PREFIX}_level", "level", lambda raw: raw if raw in LEVELS else "object", "object")
gallery.init_state(f"{PREFIX}_method", "map", lambda raw: raw if raw in METHODS else "pca", "pca")
controls = st.columns([2, 3, 3])
level = controls[0].radio(
    "Map of", list(LEVELS), format_func=LEVELS.get, key=f"{PREFIX}_level", horizontal=True
)
method = controls[1].selectbox(
    "Projection",
    list(METHODS),
    format_func=METHODS.get,
    key=f"{PREFIX}_method",
    help="PCA: linear, instant. UMAP: keeps neighbourhoods, best for clusters. t-SNE: local structure. "
    "Each map is cached on disk beside the vectors.",
)
metric_names = gq.metric_level_names(project_reader, level)
colour_options = (["class"] if level == "object" else []) + ["dataset", *metric_names]
init_choice(f"{PREFIX}_colour", "colour", str, colour_options, colour_options[0])
colour_by = controls[2].selectbox(
    "Colour by",
    colour_options,
    key=f"{PREFIX}_colour",
    format_func=gallery.metric_label,
    help="Class, dataset or any stored metric. "
    + (
        gallery.metric_help(st.session_state[f"{PREFIX}_colour"])
        if st.session_state[f"{PREFIX}_colour"] in metric_names
        else ""
    ),
)
with st.spinner(f"Computing the {method.upper()} map (cached afterwards)…"):
    points, total = es.map_points(project_reader.project, ready, level, method)
if points.empty:
    st.info(f"No {LEVELS[level]} with embeddings in the chosen datasets.")
else:
    colours: dict[str, str] | None = None
    if colour_by == "class":
        classes = es.object_classes(project_reader, points)
        colour = classes["category"]
        colours = {  # the colours the pictures draw each class in
            name: thumbnails.colour_hex(index)
            for name, index in gq.colour_ids(project_reader).items()
            if name in set(classes["category"].dropna().astype(str))
        }
    elif colour_by == "dataset":
        colour = points["dataset"].astype(str)
        colours = gallery.dataset_colours(project_reader.datasets())  # as on every other chart
    else:
        colour = pd.Series(es.metric_values_for(project_reader, points, colour_by, level))
    figure, trace_rows = map_figure(points, colour, colour_by, colours)
    event = st.plotly_chart(
        figure,
        key=f"{PREFIX}_map_{level}_{method}_{colour_by}",
        on_select="rerun",
        selection_mode=("lasso", "box", "points"),
        width="stretch",
    )
    shown = f"a seeded random {len(points):,} of {total:,}" if total > len(points) else f"all {total:,}"
    st.caption(
        f"{METHODS[method].split(' (')[0]} map of {shown} {LEVELS[level]} ({', '.join(ready)}); nearby points have "
        "similar MobileNetV2 embeddings. Drag a lasso or box (toolbar) to see those items below; double-click clears."
    )
    rows = selected_rows(event, trace_rows)
    st.subheader("Selection")
    selection_section(project_reader, points.iloc[rows][["dataset", "image_id", "object_id"]], level)

# ----- more like this -----------------------------------------------------------------------------------------------
st.divider()
st.subheader("More like this")
like = parse_like(query_value("like"))
if f"{PREFIX}_like_ds" not in st.session_state:
    st.session_state[f"{PREFIX}_like_ds"] = like[0] if like and like[0] in ready else ready[0]
    st.session_state[f"{PREFIX}_like_image"] = like[1] if like else 0
    st.session_state[f"{PREFIX}_like_object"] = "" if not like or like[2] is None else str(like[2])
if st.session_state[f"{PREFIX}_like_ds"] not in ready:
    st.session_state[f"{PREFIX}_like_ds"] = ready[0]
pick = st.columns([2, 2, 2, 1])
like_ds = pick[0].selectbox("Dataset", ready, key=f"{PREFIX}_like_ds")
like_image = pick[1].number_input("Image id", step=1, key=f"{PREFIX}_like_image")
like_object = pick[2].text_input("Object id (empty: the whole image)", key=f"{PREFIX}_like_object").strip()
object_choice: int | None = int(like_object) if like_object.lstrip("-").isdigit() else None
if like_object and object_choice is None:
    st.warning(f"Object id {like_object!r} is not a whole number.")
pick[3].button(
    "Find",
    key=f"{PREFIX}_like_find",
    on_click=set_like(like_ds, int(like_image), object_choice),
    width="stretch",
    help="Or press ≈ More like this on any card.",
)
if like is None:
    st.caption(
        "Pick an image (and optionally one of its objects) and press Find, or press ≈ More like this on any card."
    )
else:
    like_level = "image" if like[2] is None else "object"
    neighbours = es.similar_items(project_reader.project, ready, like_level, *like, top=LIKE_TOP)
    if neighbours is None:
        st.warning(
            f"No {like_level} embedding for dataset {like[0]}, image {like[1]}"
            + ("" if like[2] is None else f", object {like[2]}")
            + " (not in the dataset, or its image is missing or unreadable)."
        )
    else:
        anchor = es.card_rows(
            project_reader,
            pd.DataFrame({"dataset": [like[0]], "image_id": [like[1]], "object_id": [like[2]]}),
            like_level,
        )
        left, right = st.columns([1, 5])
        with left:
            st.image(str(picture_paths(project_reader, anchor, like_level, CARD_SIDE)[0]), width="stretch")
        with right:
            what = f"object {like[2]} ({anchor['category'].iloc[0]})" if like_level == "object" else "image"
            st.markdown(
                f"**{LIKE_TOP} nearest to {what} of {html.escape(str(anchor['file_name'].iloc[0]))}** "
                f"(dataset {like[0]}, image id {like[1]}) among the {LEVELS[like_level]} of {', '.join(ready)}, "
                "by cosine similarity of embeddings (1 = identical)."
            )
        cards(
            project_reader,
            es.card_rows(project_reader, neighbours, like_level),
            like_level,
            "like",
            "similarity",
        )

set_query(
    level=level if level != "object" else None,
    map=method if method != "pca" else None,
    colour=colour_by if colour_by != colour_options[0] else None,
    like=like_text(*like) if like else None,
)
gallery.saved_views("pages/embeddings.py", PREFIX, root)  # the map (level, projection, colour) and "like"
gallery.show_detail_from_url()
