"""The sample view: one image at full size with zoom and pan, its labels and each model's predictions
(toggled, above a score threshold), its tags (add / remove), metrics and duplicates, and previous / next
in the order of the gallery it was opened from.

Not a page of its own: every card opens it in a dialog through the URL (``?detail=DATASET|IMAGE_ID``
and ``&object=ID``), so a copied link reopens it. The page drawing the cards names its gallery's order
with :func:`set_order` before it opens the dialog.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.label_findings import KIND_TEXT, decision_buttons, fix_text
from store import gallery_queries as gq
from store import label_issue_queries as lq
from store import model_queries as mq
from store import tags as tag_store
from store import thumbnails
from store.label_issues import FLAG_THRESHOLD
from store.queries import ProjectReader

SAMPLE_SIDE = 1600  # px of the picture behind the zoomable chart (zooming further shows its pixels)
ORDER_KEY = "sample_order"
DEFAULT_SCORE = 0.5
FLAGGED_COLOUR = "#d62728"
SUGGESTED_COLOUR = "#111111"
MISSING_COLOUR = "#9400d3"


def set_order(f: gq.GalleryFilter, sort_metric: str | None, descending: bool) -> None:
    """The gallery whose order previous / next follow (the page that drew the cards calls this)."""
    st.session_state[ORDER_KEY] = (f, sort_metric, descending)


def clear_order() -> None:
    """Cards outside a gallery order (explorer, embeddings): the view opens without previous / next."""
    st.session_state.pop(ORDER_KEY, None)


def _go_to(key: tuple[str, int, int | None]) -> None:
    dataset, image_id, object_id = key
    st.query_params["detail"] = f"{dataset}|{int(image_id)}"
    if object_id is None:
        st.query_params.pop("object", None)
    else:
        st.query_params["object"] = str(int(object_id))


def _navigation(project_reader: ProjectReader, key: tuple[str, int, int | None]) -> None:
    order = st.session_state.get(ORDER_KEY)
    if not order:
        return
    f, sort_metric, descending = order
    place = gq.neighbours(project_reader, f, sort_metric, descending, key)
    if place is None:
        st.caption("Not in the gallery's current filter: no previous / next.")
        return
    left, middle, right = st.columns([1, 2, 1])
    sorted_by = f" by {sort_metric} ({'descending' if descending else 'ascending'})" if sort_metric else ""
    middle.markdown(
        f"<div style='text-align:center;padding-top:0.4rem'>{place['position']:,} of {place['total']:,} "
        f"in the gallery{sorted_by}</div>",
        unsafe_allow_html=True,
    )
    for column, label, icon, target in (
        (left, "Previous", ":material/chevron_left:", place["previous"]),
        (right, "Next", ":material/chevron_right:", place["next"]),
    ):
        if column.button(
            label, key=f"sample_{label.lower()}", icon=icon, disabled=target is None, width="stretch"
        ):
            _go_to(target)
            st.rerun()  # the whole app: the dialog reopens on the new item from the URL


def _picture_uri(root: str, record: dict[str, Any]) -> tuple[str, tuple[int, int]]:
    """The image without drawings (labels are chart traces), as a data URI, and its pixel size."""
    empty = gq.image_objects(None, [])  # type: ignore[arg-type]  # columns only, no query
    path = thumbnails.thumbnail_path(
        root, record, empty, thumbnails.DrawOptions(max_side=SAMPLE_SIDE, masks=False, boxes=False)
    )
    from PIL import Image

    with Image.open(path) as picture:
        size = picture.size
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode(), size


def _rings(segmentation: str) -> list[list[float]]:
    """Polygon rings of a COCO segmentation (RLE masks: none, their box is drawn)."""
    try:
        value = json.loads(segmentation) if segmentation else None
    except ValueError:
        return []
    if isinstance(value, list):
        return [ring for ring in value if isinstance(ring, list) and len(ring) >= 6]
    return []


def _outline(xs: list, ys: list, texts: list, points: list[tuple[float, float]], text: str) -> None:
    for x, y in points:
        xs.append(x)
        ys.append(y)
        texts.append(text)
    xs.append(None)
    ys.append(None)
    texts.append(None)


def _box_points(x: float, y: float, w: float, h: float) -> list[tuple[float, float]]:
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]


def sample_figure(
    uri: str,
    picture_size: tuple[int, int],
    frame: tuple[int, int],
    objects: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    highlight: int | None = None,
    findings: pd.DataFrame | None = None,
    missing: pd.DataFrame | None = None,
) -> go.Figure:
    """The picture in the annotated frame's coordinates, labels solid (one trace per class, masks filled),
    predictions dashed per model and class with their score; label-error findings (``findings``: flagged
    labels, with a suggested box where the fix moves it; ``missing``: boxes no label accounts for) dotted
    on top; plotly's zoom and pan come with it."""
    width, height = frame
    fig = go.Figure(
        go.Image(
            source=uri, x0=0, y0=0, dx=width / picture_size[0], dy=height / picture_size[1], hoverinfo="skip"
        )
    )
    for (category, colour_id), rows in objects.groupby(["category", "colour_id"], dropna=False, sort=True):
        colour = thumbnails.colour_hex(int(colour_id)) if pd.notna(colour_id) else "#999999"
        xs: list = []
        ys: list = []
        texts: list = []
        for row in rows.itertuples(index=False):
            text = f"{category} · object {int(row.object_id)}"
            rings = _rings(str(row.segmentation or ""))
            for ring in rings:
                _outline(xs, ys, texts, list(zip(ring[0::2], ring[1::2], strict=False)), text)
            if not rings:
                _outline(xs, ys, texts, _box_points(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h), text)
        fig.add_scatter(
            x=xs, y=ys, mode="lines", fill="toself", fillcolor=_alpha(colour, 0.25), line=dict(color=colour, width=2),
            name=f"{category}", legendgroup="labels", legendgrouptitle_text="labels", hovertext=texts,
            hoverinfo="text", hoveron="points+fills",
        )  # fmt: skip
    if highlight is not None:
        row = objects[objects["object_id"] == highlight]
        if len(row):
            r = row.iloc[0]
            points = _box_points(r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])
            fig.add_scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=f"object {highlight}",
                line=dict(color="#000000", width=4), hoverinfo="skip",
            )  # fmt: skip
    for model, frame_rows in predictions.items():
        for (category, colour_id), rows in frame_rows.groupby(
            ["category", "colour_id"], dropna=False, sort=True
        ):
            colour = thumbnails.colour_hex(int(colour_id)) if pd.notna(colour_id) else "#999999"
            xs, ys, texts = [], [], []
            for row in rows.itertuples(index=False):
                points = _box_points(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h)
                _outline(xs, ys, texts, points, f"{model} · {category} · score {row.score:.2f}")
            fig.add_scatter(
                x=xs, y=ys, mode="lines", line=dict(color=colour, width=2, dash="dash"), name=f"{category}",
                legendgroup=model, legendgrouptitle_text=model, hovertext=texts, hoverinfo="text",
            )  # fmt: skip
    _finding_traces(fig, findings, missing)
    fig.update_xaxes(range=[0, width], showgrid=False, zeroline=False, visible=False)
    fig.update_yaxes(
        range=[height, 0], showgrid=False, zeroline=False, visible=False, scaleanchor="x", scaleratio=1
    )
    fig.update_layout(
        height=min(760, max(420, int(760 * height / max(width, 1)))),
        margin=dict(l=0, r=0, t=10, b=0),
        dragmode="zoom",
        legend=dict(groupclick="toggleitem"),
        plot_bgcolor="#ececf0",
    )
    return fig


def _finding_traces(fig: go.Figure, findings: pd.DataFrame | None, missing: pd.DataFrame | None) -> None:
    """Flagged labels (red, dotted), the boxes their fixes suggest (black, dash-dot) and likely missing
    labels (violet, dotted; colours no class gets first): one legend group, 'label errors', that the legend
    can hide."""
    layers: list[tuple[str, str, list, list, list]] = []
    if findings is not None and len(findings):
        xs: list = []
        ys: list = []
        texts: list = []
        sx: list = []
        sy: list = []
        stexts: list = []
        for row in findings.itertuples(index=False):
            text = (
                f"object {int(row.object_id)} ({row.category}) · label_issue {row.label_issue:.2f} · "
                f"{KIND_TEXT.get(row.label_issue_kind, row.label_issue_kind)} · {row.decision}"
            )
            _outline(xs, ys, texts, _box_points(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h), text)
            if row.fix == "replace_box" and not pd.isna(row.suggested_w):
                points = _box_points(row.suggested_x, row.suggested_y, row.suggested_w, row.suggested_h)
                _outline(sx, sy, stexts, points, f"suggested box for object {int(row.object_id)}")
        layers.append(("flagged label", FLAGGED_COLOUR, xs, ys, texts))
        if sx:
            layers.append(("suggested box", SUGGESTED_COLOUR, sx, sy, stexts))
    if missing is not None and len(missing):
        xs, ys, texts = [], [], []
        for row in missing.itertuples(index=False):
            text = f"missing {row.category}? P(overlooked) {row.missing_probability:.2f} · {row.decision}"
            _outline(xs, ys, texts, _box_points(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h), text)
        layers.append(("missing label?", MISSING_COLOUR, xs, ys, texts))
    for name, colour, xs, ys, texts in layers:
        fig.add_scatter(
            x=xs, y=ys, mode="lines", name=name,
            line=dict(color=colour, width=3, dash="dashdot" if name == "suggested box" else "dot"),
            legendgroup="label errors", legendgrouptitle_text="label errors", hovertext=texts, hoverinfo="text",
        )  # fmt: skip


def _alpha(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _tag_row(root: str, dataset: str, image_id: int, object_id: int | None, what: str) -> None:
    """The tags on the image (or the object): each a button removing it, and a box adding one."""
    current = tag_store.tags_of(root, dataset, image_id, object_id)
    suffix = f"{image_id}_{object_id}"
    objects = None if object_id is None else [object_id]

    def remove(tag: str) -> Callable[[], None]:
        return lambda: tag_store.remove_tags(root, dataset, [image_id], objects, tag)

    def add() -> None:
        new = str(st.session_state.get(f"sample_new_{suffix}", "")).strip()
        if new:
            tag_store.add_tags(root, dataset, [image_id], objects, new)
            st.session_state[f"sample_new_{suffix}"] = ""

    columns = st.columns([1, 3, 2, 1])
    columns[0].markdown(f"<div style='padding-top:0.4rem'>Tags on the {what}:</div>", unsafe_allow_html=True)
    with columns[1]:
        if not current:
            st.caption("none")
        for tag in current:
            st.button(
                tag, key=f"sample_untag_{suffix}_{tag}", icon=":material/close:", help=f"Remove “{tag}”.",
                on_click=remove(tag),
            )  # fmt: skip
    columns[2].text_input(
        f"Add a tag to the {what}",
        key=f"sample_new_{suffix}",
        label_visibility="collapsed",
        placeholder="new tag",
    )
    columns[3].button("Add", key=f"sample_tag_{suffix}", icon=":material/sell:", on_click=add)


def sample_body(
    project_reader: ProjectReader,
    dataset: str,
    image_id: int,
    object_id: int | None,
    metric_table: Callable[[pd.DataFrame], pd.DataFrame],
    column_help: Callable[[str], str],
) -> None:
    """Everything about one image (see the module docstring)."""
    record = gq.image_record(project_reader, dataset, image_id)
    if record is None:
        st.error(f"Image {image_id} is not in dataset {dataset}.")
        return
    root = str(project_reader.project.root)
    _navigation(project_reader, (dataset, image_id, object_id))
    objects = gq.image_objects(project_reader, [(dataset, image_id)])
    models = [
        m for m in project_reader.models() if project_reader.project.model_meta(m).get("dataset") == dataset
    ]
    scored = bool(lq.scored_datasets(project_reader, [dataset]))
    findings = lq.queue(project_reader, [dataset], None, None, FLAG_THRESHOLD, "all", image_id=image_id)
    missing = lq.candidates(project_reader, [dataset], None, FLAG_THRESHOLD, "all", image_id=image_id)
    box = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]  # the label's box as stored with the label
    findings = findings.drop(columns=box, errors="ignore").merge(objects[["object_id", *box]], on="object_id")
    show, pick, threshold = st.columns([1, 3, 2])
    labels_on = show.toggle("Labels", value=True, key="sample_labels", help="The ground truth of this image.")
    findings_on = show.toggle(
        "Label errors", value=True, key="sample_findings", disabled=findings.empty and missing.empty,
        help=f"Dotted: labels flagged as likely wrong (red; label_issue ≥ {FLAG_THRESHOLD}) and boxes a model "
        f"found that no label accounts for (violet; P(overlooked) ≥ {FLAG_THRESHOLD}); dash-dot black: the box "
        "a fix suggests.",
    )  # fmt: skip
    chosen = pick.multiselect(
        "Predictions of", models, default=models[:1], key=f"sample_models_{dataset}",
        placeholder="no model" if models else "no model predicts this dataset",
        help="Dashed boxes: each model's predictions on this image (hover for the score).",
    )  # fmt: skip
    score = threshold.slider(
        "Score ≥", 0.0, 1.0, DEFAULT_SCORE, 0.05, key="sample_score", disabled=not chosen,
        help="Predictions below this score are hidden.",
    )  # fmt: skip
    predictions = {}
    for model in chosen:
        found = mq.image_predictions(project_reader, model, [(dataset, image_id)])
        predictions[model] = gq.with_colour_ids(project_reader, found[found["score"] >= score])
    uri, size = _picture_uri(root, record)
    frame = (int(record["width"]), int(record["height"]))
    figure = sample_figure(
        uri, size, frame, objects if labels_on else objects.iloc[0:0], predictions, object_id,
        findings if findings_on else None, missing if findings_on else None,
    )  # fmt: skip
    st.plotly_chart(
        figure, key="sample_chart", width="stretch", config={"scrollZoom": True, "displaylogo": False}
    )
    counts = " · ".join(f"{m}: {len(p):,} predictions ≥ {score:.2f}" for m, p in predictions.items())
    st.caption(
        "Scroll or drag a box to zoom, double-click to reset; click a legend entry to hide a class."
        + (f" {counts}." if counts else "")
    )
    status = record.get("status")
    facts = (
        f"**{record['file_name']}** · dataset {dataset} · image id {image_id} · "
        f"{record['width']}×{record['height']} annotated"
    )
    if status != "ok":
        facts += f" · **{status}**: {record.get('error') or ''}"
    exif = record.get("exif_orientation")
    if exif not in (None, 1) and not pd.isna(exif):
        facts += f" · EXIF orientation {int(exif)} ({'applied' if record.get('orientation_applied') else 'not applied'})"
    st.markdown(facts)
    _tag_row(root, dataset, image_id, None, "image")
    _findings_section(project_reader, dataset, scored, findings, missing)
    if object_id is not None:
        row = objects[objects["object_id"] == object_id]
        if not row.empty:
            _tag_row(root, dataset, image_id, object_id, f"object {object_id}")
            st.markdown(f"**Object {object_id}** ({row.iloc[0]['category']}) — its metrics:")
            st.dataframe(
                metric_table(gq.item_metrics(project_reader, dataset, image_id, object_id)),
                hide_index=True,
                width="stretch",
            )
    st.markdown("**Image metrics**")
    st.dataframe(
        metric_table(gq.item_metrics(project_reader, dataset, image_id)),
        hide_index=True,
        width="stretch",
        column_config={"meaning": st.column_config.TextColumn(width="large")},
    )
    st.markdown(f"**Objects** ({len(objects)})")
    object_table = gq.image_object_metrics(project_reader, dataset, image_id)
    st.dataframe(
        object_table,
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.NumberColumn(help=column_help(name), format="%.4g")
            for name in object_table.columns
            if column_help(name)
        },
    )
    partners = gq.duplicate_partners(project_reader, dataset, image_id)
    if len(partners):
        st.markdown("**Duplicates of this image**")
        st.dataframe(partners, hide_index=True, width="stretch")


def _findings_section(
    project_reader: ProjectReader, dataset: str, scored: bool, findings: pd.DataFrame, missing: pd.DataFrame
) -> None:
    """This image's label-error findings and missing-label candidates, each with its fix, evidence and
    accept / reject / undo (the same decisions as on the Label errors page)."""
    if not scored:
        st.caption(
            f"Label errors: dataset {dataset} is not scored yet (`cocolens metrics --project …`, or "
            "**Score the labels now** on the Label errors page)."
        )
        return
    if findings.empty and missing.empty:
        st.caption(
            f"Label errors: no label of this image is flagged (label_issue ≥ {FLAG_THRESHOLD}) and no box "
            f"looks like a missing label (P(overlooked) ≥ {FLAG_THRESHOLD})."
        )
        return
    from metrics.label_errors import evidence_text

    st.markdown(f"**Label errors on this image** ({len(findings)} flagged, {len(missing)} possibly missing)")
    for row in findings.itertuples():
        summary = (
            f":red[**object {int(row.object_id)}**] ({html.escape(str(row.category))}) · "
            f"{KIND_TEXT.get(row.label_issue_kind, row.label_issue_kind)} · label_issue **{row.label_issue:.2f}**"
        )
        key = f"sv|{row.dataset}_{row.image_id}_{row.object_id}"
        _finding_line(
            project_reader, row, findings, "object", key, summary, fix_text(row), evidence_text(row, {})
        )
    for row in missing.itertuples():
        summary = (
            f":violet[**missing {html.escape(str(row.category))}?**] P(overlooked) **{row.missing_probability:.2f}** · "
            f"model `{row.model}` score {row.score:.2f} · prediction {int(row.prediction_id)}"
        )
        key = f"sv|c_{row.dataset}_{row.image_id}_{row.prediction_id}"
        _finding_line(project_reader, row, missing, "candidate", key, summary, "add this box")


def _finding_line(
    project_reader: ProjectReader,
    row: Any,
    frame: pd.DataFrame,
    finding: str,
    key: str,
    summary: str,
    fix: str,
    evidence: str | None = None,
) -> None:
    """One finding or candidate: its summary (and the decision taken), fix and evidence beside
    accept / reject / undo (``finding``, ``key``: as :func:`decision_buttons` takes them)."""
    decision = "" if row.decision == "open" else f" · **{row.decision}**"
    text, buttons = st.columns([3, 2])
    text.markdown(f"{summary}{decision}  \nFix: {fix}")
    if evidence is not None:
        text.caption(evidence)
    with buttons:
        decision_buttons(project_reader, row, frame, finding, key)
