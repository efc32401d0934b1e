"""Cards of the Embeddings page (its selection and "more like this" galleries), importable without
running the page: pictures, details and more-like-this buttons, and the map selection paged and tagged."""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
import streamlit as st

from pages import gallery
from pages.embedding_map import like_text
from pages.mislabelled import picture_paths
from store import embedding_store as es
from store import tags as tag_store
from store.queries import ProjectReader

PREFIX = "emb"
LEVELS = {"object": "objects (crops)", "image": "images"}
SELECTION_CARDS = 24
PER_ROW = 5  # as the Label quality crops: room for two full-width buttons
CARD_SIDE = 192


def set_like(dataset: str, image_id: int, object_id: int | None) -> Callable[[], None]:
    def apply() -> None:
        st.query_params["like"] = like_text(dataset, image_id, object_id)
        st.session_state[f"{PREFIX}_like_ds"] = dataset
        st.session_state[f"{PREFIX}_like_image"] = int(image_id)
        st.session_state[f"{PREFIX}_like_object"] = "" if object_id is None else str(int(object_id))

    return apply


def cards(
    project_reader: ProjectReader, items: pd.DataFrame, level: str, key: str, value: str | None
) -> None:
    """Cards with a picture, a one-line caption (``value`` column shown), details and more-like-this buttons."""
    paths = picture_paths(project_reader, items, level, CARD_SIDE)
    columns = st.columns(PER_ROW)
    for index, (row, path) in enumerate(zip(items.itertuples(index=False), paths, strict=True)):
        object_id = None if level == "image" or pd.isna(row.object_id) else int(row.object_id)
        ident = f"{row.dataset}_{row.image_id}_{object_id}"
        with columns[index % PER_ROW].container(border=True):
            st.image(str(path), width="stretch")
            name = str(row.category) if level == "object" else gallery._short(str(row.file_name), 22)
            extra = f"  \n{value} {getattr(row, value):.3f}" if value else ""
            st.caption(f"**{html.escape(name)}**{extra}")
            st.button(
                "Details",
                icon=":material/zoom_in:",
                key=f"{PREFIX}_{key}_detail_{ident}",
                on_click=gallery.open_detail(row.dataset, int(row.image_id), object_id),
                width="stretch",
                help=f"{row.file_name} (dataset {row.dataset}, image id {row.image_id}"
                + (f", object {object_id}" if object_id is not None else "")
                + "): details in context.",
            )
            st.button(
                "≈ More like this",
                key=f"{PREFIX}_{key}_like_{ident}",
                on_click=set_like(str(row.dataset), int(row.image_id), object_id),
                width="stretch",
                help="More like this: its nearest neighbours by embedding (cosine similarity).",
            )


def selection_section(project_reader: ProjectReader, selected: pd.DataFrame, level: str) -> None:
    """The items selected on the map: every one of them, page by page, and a tag for all of them."""
    if not len(selected):
        st.caption("Nothing selected: lasso or box-select points on the map to see them here.")
        return
    keys = selected.reset_index(drop=True)
    if level == "image":
        keys = keys[["dataset", "image_id"]]
    signature = hash(tuple(map(tuple, keys.astype(str).to_numpy().tolist())))
    if st.session_state.get(f"{PREFIX}_sel_signature") != signature:  # a new selection: its first page
        st.session_state[f"{PREFIX}_sel_signature"] = signature
        st.session_state[f"{PREFIX}_sel_page"] = 1
        st.session_state.pop(f"{PREFIX}_sel_pending", None)
    pages = max(1, -(-len(keys) // SELECTION_CARDS))
    what = LEVELS[level].split(" ")[0]
    info, pager, tag_col, button_col = st.columns([2, 1, 2, 1])
    page = int(pager.number_input(f"Page (of {pages})", 1, pages, step=1, key=f"{PREFIX}_sel_page"))
    first = (page - 1) * SELECTION_CARDS
    info.markdown(
        f"<div style='padding-top:2rem'><b>{len(keys):,} {what} selected</b> · "
        f"{first + 1:,}–{min(first + SELECTION_CARDS, len(keys)):,} shown</div>",
        unsafe_allow_html=True,
    )
    root = str(project_reader.project.root)
    tag = tag_col.text_input("Tag the selection", value="review", key=f"{PREFIX}_sel_tag").strip()
    button_col.write("")
    if button_col.button("Tag all…", key=f"{PREFIX}_sel_tag_all", icon=":material/sell:", disabled=not tag):
        st.session_state[f"{PREFIX}_sel_pending"] = (tag, len(keys))
    pending = st.session_state.get(f"{PREFIX}_sel_pending")
    if pending == (tag, len(keys)):
        st.warning(f"Tag all {len(keys):,} selected {what} with “{tag}”?", icon=":material/warning:")
        yes, no, _ = st.columns([1, 1, 6])
        if yes.button("Confirm", key=f"{PREFIX}_sel_confirm", type="primary"):
            added = tag_store.add_keys(root, keys, tag)
            st.session_state.pop(f"{PREFIX}_sel_pending", None)
            st.success(f"Tagged {added:,} {what} with “{tag}” ({len(keys) - added:,} already had it).")
        if no.button("Cancel", key=f"{PREFIX}_sel_cancel"):
            st.session_state.pop(f"{PREFIX}_sel_pending", None)
            st.rerun()
    picked = selected.iloc[first : first + SELECTION_CARDS]
    cards(project_reader, es.card_rows(project_reader, picked, level), level, "sel", None)
