"""The "likely mislabelled" gallery on the Label quality page: object crops whose label their embedding
disagrees with, least plausible first, with the class a classifier suggests and one-click tagging.

Scores come from ``cocolens metrics --embeddings`` (``store.embedding_store``): ``label_confidence``
(out-of-fold probability of the given class) and ``annotation_quality`` (share of the 10 nearest
crops with the same class). Both are in [0, 1], low = suspicious.
"""

from __future__ import annotations

import html
import math
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages import gallery
from pages.gallery import card_pictures as picture_paths  # the name pages.embeddings imports from here
from store import embedding_store as es
from store import tags as tag_store
from store.queries import ProjectReader

PREFIX = "ml"
DEFAULT_TAG = "mislabelled?"
PAGE_SIZE = 15  # three rows of five crops
PER_ROW = 5
SORTS = {
    "label_confidence": "label confidence (classifier)",
    "annotation_quality": "annotation quality (10 neighbours)",
}


def embeddings_command(project_root: str | Path) -> str:
    """The exact command that computes embeddings for every dataset of a project."""
    return f"cocolens metrics --project {shlex.quote(str(project_root))} --embeddings"


def _score(value: Any) -> str:
    if value is None or pd.isna(value) or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.2f}"


def _cards(project_reader: ProjectReader, items: pd.DataFrame, tag: str) -> None:
    root = str(project_reader.project.root)
    paths = picture_paths(project_reader, items, "object", gallery.CROP_SIDE)
    tagged = tag_store.tagged_keys(root, tag)
    columns = st.columns(PER_ROW)
    for index, (row, path) in enumerate(zip(items.itertuples(index=False), paths, strict=True)):
        key = (str(row.dataset), int(row.image_id), int(row.object_id))
        with columns[index % PER_ROW].container(border=True):
            st.image(str(path), width="stretch")
            given = html.escape(str(row.category))
            suggested = html.escape(str(row.suggested_category))
            verdict = (
                f"→ **{suggested}** (p {_score(row.suggested_probability)})"
                if row.disagrees
                else "(model agrees)"
            )
            st.caption(
                f"**{given}** {verdict}  \nconfidence {_score(row.label_confidence)} · "
                f"quality {_score(row.annotation_quality)}"
            )
            st.button(
                "In image",
                icon=":material/zoom_in:",
                key=f"{PREFIX}_detail_{key[0]}_{key[1]}_{key[2]}",
                on_click=gallery.open_detail(*key),
                width="stretch",
                help=f"Object {key[2]} in {row.file_name} (dataset {key[0]}, image id {key[1]}), in context.",
            )
            gallery.tag_button(PREFIX, root, key, tag, tagged, " (shared by every page and the export)")


def render(project_reader: ProjectReader, datasets: list[str]) -> None:
    """The section: controls, one page of suspicious crops, or the command that makes the scores."""
    st.divider()
    st.subheader("Likely mislabelled")
    root = project_reader.project.root
    ready = es.datasets_with_embeddings(project_reader.project, datasets)
    missing = [d for d in datasets if d not in ready]
    if not ready:
        st.info(
            "Needs object embeddings, which this project does not have yet. Compute them with "
            f"`{embeddings_command(root)}` (or the button on the Embeddings page)."
        )
        return
    st.caption(
        "Crops whose class their MobileNetV2 embedding disputes, least plausible first. **label confidence**: "
        "out-of-fold probability of the given class from a classifier on the embeddings; **quality**: share of "
        "the 10 most similar crops with the same class. Both 0–1, low = suspicious; → names the class the "
        "classifier prefers, with its probability."
        + (f" No embeddings yet for {', '.join(missing)}: `{embeddings_command(root)}`." if missing else "")
    )
    left, middle, right = st.columns([2, 2, 2])
    sort_by = left.radio(
        "Least plausible by",
        list(SORTS),
        format_func=SORTS.get,
        key=f"{PREFIX}_sort",
        horizontal=True,
    )
    only_disagreeing = middle.toggle(
        "Only where another class is suggested",
        key=f"{PREFIX}_disagree",
        help="Keep objects whose most likely class (classifier) differs from the given one.",
    )
    tag = right.text_input("Tag for the cards", value=DEFAULT_TAG, key=f"{PREFIX}_tag").strip() or DEFAULT_TAG
    total = es.suggestion_count(project_reader, ready, only_disagreeing)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get(f"{PREFIX}_page", 1) > pages:
        st.session_state[f"{PREFIX}_page"] = 1
    info, pager = st.columns([4, 1])
    page = int(pager.number_input(f"Page (of {pages})", 1, pages, step=1, key=f"{PREFIX}_page"))
    info.markdown(
        f"**{total:,} objects** scored"
        + (" · the classifier suggests another class" if only_disagreeing else "")
    )
    items = es.suggestion_page(project_reader, ready, sort_by, only_disagreeing, page - 1, PAGE_SIZE)
    if items.empty:
        st.info("No objects here: the classifier agrees with every label.")
        return
    _cards(project_reader, items, tag)
