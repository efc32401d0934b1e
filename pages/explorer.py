"""Prediction explorer: galleries of true positives, false positives and missed labels, with the
labels (solid) and the model's predictions (dashed, with score) drawn, each card saying why it is
there; and the label errors the model's confident predictions point at, best first, with one-click
tagging. The state lives in the URL (view, cls, why, sort, order, kind, page, size).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from pages.gallery import (
    init_state,
    legend,
    metric_help,
    open_detail,
    page_controls,
    saved_views,
    show_detail_from_url,
)
from pages.model_common import ModelChoice, outcome_text, pick_model
from pages.state import init_choice, query_list, reader, set_query
from store import gallery_queries as gq
from store import model_queries as mq
from store import prediction_thumbnails as pt
from store import tags as tag_store
from store.queries import ProjectReader

VIEWS = {
    "tp": ":material/check_circle: True positives",
    "fp": ":material/cancel: False positives",
    "fn": ":material/visibility_off: Missed labels",
    "errors": ":material/label: Label errors from predictions",
}
COLUMNS = 4
CARD_SIDE = 320
OTHER_PREDICTIONS_MIN_SCORE = 0.3  # other predictions drawn on a card (the card's own one always is)
DEFAULT_TAG = "label_error"
KIND_TEXT = {
    "overlooked": "overlooked: a confident prediction no label accounts for — a label is probably missing",
    "swapped": "swapped: a confident prediction of another class covers this label",
    "badly_located": "badly located: the closest confident prediction of its class overlaps only loosely",
}


def _reset_page() -> None:
    st.session_state["px_page"] = 1


def _box(row: object, prefix: str) -> tuple[float, float, float, float] | None:
    values = [getattr(row, f"{prefix}_{k}", None) for k in ("x", "y", "w", "h")]
    if any(v is None or pd.isna(v) for v in values):
        return None
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _pictures(project_reader: ProjectReader, model: str, dataset: str, items: pd.DataFrame) -> list[str]:
    """One cached picture per card: cropped around its prediction and label, predictions dashed."""
    root = str(project_reader.project.root)
    image_ids = items["image_id"].astype(int).tolist()
    records = mq.image_records(project_reader, dataset, image_ids)
    objects = gq.image_objects(project_reader, [(dataset, i) for i in image_ids])
    predictions = gq.with_colour_ids(
        project_reader, mq.image_predictions(project_reader, model, [(dataset, i) for i in image_ids])
    )
    objects_by = {k: g for k, g in objects.groupby("image_id")}
    predictions_by = {k: g for k, g in predictions.groupby("image_id")}
    paths = []
    for row in items.itertuples(index=False):
        image_id = int(row.image_id)
        focus = [b for b in (_box(row, "p"), _box(row, "o")) if b is not None]
        prediction_id = None if pd.isna(row.prediction_id) else int(row.prediction_id)
        object_id = None if pd.isna(row.object_id) else int(row.object_id)
        shown = predictions_by.get(image_id, predictions.iloc[0:0])
        shown = shown[
            (shown["score"] >= OTHER_PREDICTIONS_MIN_SCORE) | (shown["prediction_id"] == prediction_id)
        ]
        path = pt.picture_path(
            root,
            records[image_id],
            objects_by.get(image_id, objects.iloc[0:0]),
            shown,
            focus=focus or None,
            focus_prediction=prediction_id,
            focus_object=object_id,
            max_side=CARD_SIDE,
        )
        paths.append(str(path))
    return paths


def _value(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.4g}"


def _sort_choices(project_reader: ProjectReader, dataset: str) -> list[str]:
    names = mq.metric_names(project_reader, dataset)
    return [*mq.SORT_KEYS, *names["object"], *names["image"]]


def _sort_help(name: str) -> str:
    return mq.SORT_KEYS.get(name) or metric_help(name)


def _outcome_gallery(choice: ModelChoice, view: str) -> None:
    project_reader = reader()
    categories = mq.categories_of(project_reader, choice.dataset)
    names = dict(zip(categories["category_id"].astype(int), categories["name"], strict=True))
    reasons = list(mq.FP_REASONS if view == "fp" else mq.FN_REASONS if view == "fn" else [])
    sorts = _sort_choices(project_reader, choice.dataset)

    if "px_classes" not in st.session_state:
        st.session_state["px_classes"] = [
            int(c) for c in query_list("cls") if c.isdigit() and int(c) in names
        ]
    init_choice("px_sort", "sort", str, sorts, "score")
    init_state("px_order", "order", lambda raw: "ascending" if raw == "asc" else "descending", "descending")
    key_reasons = f"px_reasons_{view}"
    if key_reasons not in st.session_state:
        st.session_state[key_reasons] = [r for r in query_list("why") if r in reasons]

    columns = st.columns([3, 3, 2, 2] if reasons else [3, 2, 2])
    chosen_classes = columns[0].multiselect(
        "Classes",
        list(names),
        key="px_classes",
        format_func=lambda c: names[c],
        on_change=_reset_page,
        placeholder="all classes",
    )
    chosen_reasons: list[str] = []
    offset = 0
    if reasons:
        chosen_reasons = columns[1].multiselect(
            "Reasons",
            reasons,
            key=key_reasons,
            on_change=_reset_page,
            placeholder="all reasons",
            help="Why the prediction is a false positive / the label was missed, at the chosen IoU threshold.",
        )
        offset = 1
    sort = columns[1 + offset].selectbox(
        "Sort by", sorts, key="px_sort", on_change=_reset_page, help=_sort_help(st.session_state["px_sort"])
    )
    order = columns[2 + offset].radio(
        "Order", ["descending", "ascending"], key="px_order", horizontal=True, on_change=_reset_page
    )
    st.caption(f"Sorted by **{sort}**: {_sort_help(sort)}")
    total = mq.gallery_total(
        project_reader, choice.model, choice.iou_type, choice.tag, view, chosen_classes, chosen_reasons
    )
    page, size = page_controls("px", total)
    items, total = mq.gallery(
        project_reader,
        choice.model,
        choice.iou_type,
        choice.tag,
        view,
        chosen_classes,
        chosen_reasons,
        sort,
        order == "descending",
        limit=size,
        offset=page * size,
    )
    set_query(
        cls=[str(c) for c in chosen_classes],
        why=chosen_reasons,
        sort=sort if sort != "score" else None,
        order="asc" if order == "ascending" else None,
        page=page + 1 if page else None,
    )
    if items.empty:
        st.info("Nothing matches these filters.")
        return
    legend(categories.rename(columns={"name": "category"}))
    st.caption(
        "Solid: labels (the card's label bolder). Dashed: predictions with their score (the card's prediction bold, "
        f"others from score {OTHER_PREDICTIONS_MIN_SCORE} thin). Crops keep context around the prediction and label."
    )
    tag = _tag_input(st)

    def describe(row: Any, object_id: int | None) -> tuple[str, str]:
        ident = f"prediction {int(row.prediction_id)}" if view != "fn" else f"label {int(row.object_id)}"
        st.markdown(f"**{html.escape(str(row.category))}** · {html.escape(str(row.file_name))} · {ident}")
        st.caption(f"{outcome_text(row, view, choice.threshold)}  \n{sort} = {_value(row.sort_value)}")
        card = f"{view}_{row.image_id}_{'' if pd.isna(row.prediction_id) else int(row.prediction_id)}_{object_id}"
        return card, "image (a false positive has no label)"

    paths = _pictures(project_reader, choice.model, choice.dataset, items)
    _card_grid(str(project_reader.project.root), items, paths, tag, describe)


def _card_grid(
    root: str,
    items: pd.DataFrame,
    paths: list[str],
    tag: str,
    describe: Callable[[Any, int | None], tuple[str, str]],
) -> None:
    """Both galleries' cards: the picture, the text ``describe`` writes, and the two buttons. ``describe``
    returns the card's widget-key part and what the tag goes on when the card has no label."""
    tagged = tag_store.tagged_keys(root, tag)
    grid = st.columns(COLUMNS)
    for index, (row, path) in enumerate(zip(items.itertuples(index=False), paths, strict=True)):
        object_id = None if pd.isna(row.object_id) else int(row.object_id)
        with grid[index % COLUMNS].container(border=True):
            st.image(path, width="stretch")
            card, no_label = describe(row, object_id)
            _card_buttons(root, card, str(row.dataset), int(row.image_id), object_id, tag, tagged, no_label)


def _tag_input(place: Any) -> str:
    """The "Tag to apply" box, drawn in ``place`` (the page or a column)."""
    init_state("px_tag", "tag", str, DEFAULT_TAG)
    return (
        place.text_input(
            "Tag to apply",
            key="px_tag",
            help="The tag buttons add or remove this tag; tags are shared by every page and the export.",
        ).strip()
        or DEFAULT_TAG
    )


def _card_buttons(
    root: str,
    card: str,
    dataset: str,
    image_id: int,
    object_id: int | None,
    tag: str,
    tagged: set[tag_store.Key],
    no_label: str,
) -> None:
    """A card's two buttons: open the sample view, and toggle ``tag`` on its label (or, without one,
    its image: ``no_label`` names it in the help)."""
    st.button(
        "Open image",
        icon=":material/zoom_in:",
        key=f"px_open_{card}",
        on_click=open_detail(dataset, image_id, object_id),
        width="stretch",
        help="The sample view: full size with zoom, labels and every model's predictions, metrics, tags.",
    )
    key = (dataset, image_id, object_id)
    present = key in tagged
    st.button(
        tag,
        icon=":material/check:" if present else ":material/sell:",
        key=f"px_tag_{card}",
        on_click=lambda: tag_store.toggle(root, key, tag, present),
        type="primary" if present else "secondary",
        width="stretch",
        help=f"{'Remove' if present else 'Add'} the tag “{tag}” on this {'label' if object_id is not None else no_label}.",
    )


def _errors_gallery(choice: ModelChoice) -> None:
    project_reader = reader()
    root = str(project_reader.project.root)
    kinds = list(mq.LABEL_ERROR_KINDS)
    if "px_kinds" not in st.session_state:
        st.session_state["px_kinds"] = [k for k in query_list("kind") if k in kinds]
    left, right = st.columns([3, 2])
    chosen = left.multiselect(
        "Kinds",
        kinds,
        key="px_kinds",
        on_change=_reset_page,
        placeholder="all kinds",
        help=" · ".join(KIND_TEXT.values()),
    )
    tag = _tag_input(right)
    st.caption(
        "Candidates from the model's confident predictions (score ≥ 0.5), most likely first. Overlooked: "
        "the image is tagged (there is no label to tag). Swapped / badly located: the label is tagged."
    )
    _, total = mq.label_errors(project_reader, choice.model, choice.iou_type, chosen, limit=1)
    page, size = page_controls("px", total)
    items, total = mq.label_errors(
        project_reader, choice.model, choice.iou_type, chosen, limit=size, offset=page * size
    )
    set_query(kind=chosen, tag=tag if tag != DEFAULT_TAG else None, page=page + 1 if page else None)
    if items.empty:
        st.info("No label-error candidates for this model.")
        return
    categories = mq.categories_of(project_reader, choice.dataset)
    legend(categories.rename(columns={"name": "category"}))

    def describe(row: Any, object_id: int | None) -> tuple[str, str]:
        what = f"label {object_id} ({row.category})" if object_id is not None else "no label"
        suggestion = f" → '{row.suggested_category}'" if row.kind == "swapped" else ""
        st.markdown(f"**{row.kind}** · score {row.score:.2f} · {html.escape(str(row.file_name))}")
        st.caption(f"{KIND_TEXT[row.kind]}  \n{what}{suggestion}, prediction IoU {float(row.iou):.2f}")
        return f"{row.kind}_{row.image_id}_{row.prediction_id}_{object_id}", "image"

    paths = _pictures(project_reader, choice.model, choice.dataset, items)
    _card_grid(root, items, paths, tag, describe)


def main() -> None:
    st.title("Prediction explorer")
    choice = pick_model("px")
    if choice is None:
        return
    init_choice("px_view", "view", str, VIEWS, "fp")
    view = st.radio(
        "Show", list(VIEWS), key="px_view", horizontal=True, format_func=VIEWS.get, on_change=_reset_page
    )
    set_query(view=view)
    if view == "errors":
        _errors_gallery(choice)
    else:
        _outcome_gallery(choice, view)
    # last: the galleries have written their filters (model, view, classes, reasons, sort, page) to the URL
    saved_views("pages/explorer.py", "px", str(reader().project.root))
    show_detail_from_url()


main()
