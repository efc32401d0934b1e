"""Label errors: one ranked review queue of likely wrong labels and missing ones, each with a fix to
accept or reject. Scores come from ``cocolens metrics`` (store.label_issues); decisions are stored
in the project (store.label_decisions) and applied by ``cocolens export coco --apply-fixes``."""

from __future__ import annotations

import html
import math
import shlex
from collections.abc import Iterator
from typing import Any

import pandas as pd
import streamlit as st

from pages.job_progress import action_panel
from pages.label_findings import KIND_TEXT, decision_buttons, fix_text
from pages.state import reader, require_datasets
from store import gallery_queries as gq
from store import label_issue_queries as lq
from store import thumbnails
from store.label_issues import FLAG_THRESHOLD
from store.queries import ProjectReader

PREFIX = "le"
PAGE_SIZE = 8
PER_ROW = 2
SIDE = 200
SCORE_HELP = (
    "**label_issue** ∈ [0, 1], higher = more likely wrong: 1 − P(clean) from a classifier that cocolens "
    "trained on errors it planted into copies of this dataset's labels (swapped classes, moved boxes, "
    "boxes on nothing, duplicates), scored out of fold. It combines crop-embedding neighbours, the "
    "out-of-fold class probability, the newest model's predictions and geometry. **missing_label** ∈ "
    "[0, 1], higher = an object is more likely unlabelled: the probability that a prediction no label "
    "accounts for is an overlooked object (learned from labels dropped from the copies)."
)


def _metrics_command(root: Any) -> str:
    return f"cocolens metrics --project {shlex.quote(str(root))}"


def _evidence_note(metas: dict[str, dict[str, Any]], datasets: list[str], root: Any) -> None:
    lines = []
    for dataset in datasets:
        meta = metas.get(dataset)
        if meta is None:
            lines.append(f"**{dataset}**: not scored yet — run `{_metrics_command(root)}`.")
            continue
        evidence = meta.get("evidence", [])
        note = f"**{dataset}**: evidence from {', '.join(evidence)}"
        if meta.get("model"):
            note += f" (model `{meta['model']}`)"
        if "predictions" not in evidence:
            note += (
                ". No model's predictions: location errors rest on crop embeddings alone and missing labels "
                "are not scored — import predictions or train a model."
            )
        if "embeddings" not in evidence:
            note += (
                f". No embeddings: `{_metrics_command(root)} --embeddings` adds neighbour and class evidence."
            )
        lines.append(note)
    st.caption("  \n".join(lines))


def _pictures(project_reader: ProjectReader, items: pd.DataFrame, finding: str) -> list[tuple[Any, Any]]:
    """(as labelled, as fixed) card pictures for each finding, drawn on the image with every label."""
    root = str(project_reader.project.root)
    keys = list({(r.dataset, int(r.image_id)) for r in items.itertuples(index=False)})
    objects = gq.image_objects(project_reader, keys)
    by_image = {key: group for key, group in objects.groupby(["dataset", "image_id"])}
    jobs = []
    for row in items.itertuples(index=False):
        drawn = by_image.get((row.dataset, int(row.image_id)), objects.iloc[0:0]).copy()
        record = row._asdict()
        size = (SIDE, SIDE)
        if finding == "candidate":
            added = pd.DataFrame([{
                "dataset": row.dataset, "image_id": int(row.image_id), "object_id": -1,
                "category_id": int(row.category_id), "category": row.category, "bbox_x": row.bbox_x,
                "bbox_y": row.bbox_y, "bbox_w": row.bbox_w, "bbox_h": row.bbox_h, "segmentation": "",
                "iscrowd": 0, "colour_id": _colour_of(drawn, int(row.category_id)),
            }])  # fmt: skip
            fixed = pd.concat([drawn, added], ignore_index=True)
            before = thumbnails.DrawOptions(max_side=SIDE, crop_object=-1, hide_objects=(-1,), box=size)
            after = thumbnails.DrawOptions(max_side=SIDE, crop_object=-1, highlight_object=-1, box=size)
            jobs += [(record, fixed, before), (record, fixed, after)]
            continue
        target = int(row.object_id)
        before = thumbnails.DrawOptions(max_side=SIDE, crop_object=target, highlight_object=target, box=size)
        fixed = drawn.copy()
        at = fixed["object_id"] == target
        after = before
        if row.fix == "relabel" and not pd.isna(row.suggested_category_id):
            fixed.loc[at, "category_id"] = int(row.suggested_category_id)
            fixed.loc[at, "category"] = row.suggested_category
            fixed.loc[at, "colour_id"] = _colour_of(drawn, int(row.suggested_category_id))
        elif row.fix == "replace_box" and not pd.isna(row.suggested_w):
            fixed.loc[at, ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]] = [
                row.suggested_x, row.suggested_y, row.suggested_w, row.suggested_h
            ]  # fmt: skip
            fixed.loc[at, "segmentation"] = ""
        elif row.fix == "delete":
            after = thumbnails.DrawOptions(
                max_side=SIDE, crop_object=target, hide_objects=(target,), box=size
            )
        jobs += [(record, drawn, before), (record, fixed, after)]
    paths = thumbnails.thumbnail_paths(root, jobs)
    return list(zip(paths[0::2], paths[1::2], strict=True))


def _colour_of(objects: pd.DataFrame, category_id: int) -> Any:
    match = objects.loc[objects["category_id"] == category_id, "colour_id"]
    return match.iloc[0] if len(match) else category_id


def _before_after(
    project_reader: ProjectReader, page: pd.DataFrame, kind: str, suggestion: str
) -> Iterator[Any]:
    """Each row of ``page`` inside its card, the labelled picture already drawn beside the suggestion's
    (the caller adds the text and buttons while the card is open)."""
    pictures = _pictures(project_reader, page, kind)
    columns = st.columns(PER_ROW)
    for index, (row, (before, after)) in enumerate(zip(page.itertuples(), pictures, strict=True)):
        with columns[index % PER_ROW].container(border=True):
            left, right = st.columns(2)
            left.image(str(before), caption="as labelled", width="stretch")
            right.image(str(after), caption=suggestion, width="stretch")
            yield row


def _object_cards(project_reader: ProjectReader, page: pd.DataFrame) -> None:
    for row in _before_after(project_reader, page, "object", "suggested fix"):
        fix = fix_text(row)
        decision = "" if row.decision == "open" else f" · **{row.decision}**"
        st.markdown(
            f"**{html.escape(str(row.category))}** · {KIND_TEXT.get(row.label_issue_kind, row.label_issue_kind)} · "
            f"label_issue **{row.label_issue:.2f}**{decision}  \nFix: {fix}"
        )
        from metrics.label_errors import evidence_text

        st.caption(
            f"{evidence_text(row, {})}  \n{html.escape(str(row.file_name))} · {row.dataset} · "
            f"object {int(row.object_id)}"
        )
        decision_buttons(
            project_reader, row, page, "object", f"{PREFIX}|{row.dataset}_{row.image_id}_{row.object_id}"
        )


def _candidate_cards(project_reader: ProjectReader, page: pd.DataFrame) -> None:
    for row in _before_after(project_reader, page, "candidate", "suggested: add this box"):
        decision = "" if row.decision == "open" else f" · **{row.decision}**"
        st.markdown(
            f"Missing **{html.escape(str(row.category))}**? · P(overlooked) **{row.missing_probability:.2f}** · "
            f"model score {row.score:.2f}{decision}"
        )
        st.caption(f"{html.escape(str(row.file_name))} · {row.dataset} · prediction {int(row.prediction_id)}")
        decision_buttons(
            project_reader,
            row,
            page,
            "candidate",
            f"{PREFIX}|c_{row.dataset}_{row.image_id}_{row.prediction_id}",
        )


def _bulk_accept(project_reader: ProjectReader, frame: pd.DataFrame, column: str, finding: str) -> None:
    """Accept every open finding at or above a threshold, after a confirmation naming the count."""
    left, right = st.columns([2, 3])
    threshold = left.number_input(
        f"Accept all open findings with {column} ≥",
        0.0,
        1.0,
        value=0.9,
        step=0.05,
        key=f"{PREFIX}_{finding}_bulk_t",
    )
    chosen = frame[(frame["decision"] == "open") & (frame[column] >= threshold)]
    if finding == "object":
        chosen = chosen[chosen["fix"] != "review"]
    pending = f"{PREFIX}_{finding}_bulk_pending"
    if right.button(f"Accept {len(chosen):,} fixes…", key=f"{PREFIX}_{finding}_bulk", disabled=chosen.empty):
        st.session_state[pending] = True
    if st.session_state.get(pending) and not chosen.empty:
        st.warning(f"Accept the suggested fix for **{len(chosen):,}** findings with {column} ≥ {threshold:.2f}? "
                   "Each can be undone one by one.")  # fmt: skip
        yes, no = st.columns(2)
        if yes.button("Yes, accept them", type="primary", key=f"{PREFIX}_{finding}_bulk_yes"):
            changed = lq.decide_rows(project_reader, chosen, "accepted", finding)
            st.session_state[pending] = False
            st.toast(f"Accepted {changed:,} fixes")
            st.rerun()
        if no.button("Cancel", key=f"{PREFIX}_{finding}_bulk_no"):
            st.session_state[pending] = False
            st.rerun()


def _pager(total: int, key: str) -> int:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = 1
    return int(st.number_input(f"Page (of {pages})", 1, pages, step=1, key=key))


def _wrong_labels(project_reader: ProjectReader, datasets: list[str]) -> None:
    kinds_col, classes_col, show_col, score_col = st.columns([2, 2, 1, 2])
    kinds = kinds_col.multiselect("Kind", list(KIND_TEXT), format_func=KIND_TEXT.get, key=f"{PREFIX}_kinds")
    names = project_reader.df(
        f"SELECT DISTINCT name FROM categories WHERE dataset IN ({', '.join('?' for _ in datasets)}) ORDER BY 1",
        list(datasets),
    )["name"].tolist()
    classes = classes_col.multiselect("Class (as labelled)", names, key=f"{PREFIX}_classes")
    decided = show_col.selectbox("Show", lq.DECIDED, key=f"{PREFIX}_decided")
    min_score = score_col.slider("label_issue at least", 0.0, 1.0, FLAG_THRESHOLD, 0.05, key=f"{PREFIX}_min",
                                 help="Lower it to review borderline labels too.")  # fmt: skip
    frame = lq.queue(project_reader, datasets, kinds, classes, min_score, decided)
    info, pager = st.columns([4, 1])
    with pager:
        page = _pager(len(frame), f"{PREFIX}_page")
    counts = frame["label_issue_kind"].map(KIND_TEXT).value_counts()
    info.markdown(
        f"**{len(frame):,} labels** in the queue"
        + (": " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) if len(counts) else "")
    )
    if frame.empty:
        st.info("Nothing in the queue with these filters.")
        return
    _bulk_accept(project_reader, frame, "label_issue", "object")
    _object_cards(project_reader, frame.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])


def _missing_labels(
    project_reader: ProjectReader, datasets: list[str], metas: dict[str, dict[str, Any]]
) -> None:
    if not any(meta.get("model") for meta in metas.values()):
        st.info("Missing labels need a model's predictions: import them (`cocolens import predictions …`) or "
                "train a model from the sidebar.")  # fmt: skip
        return
    show_col, score_col = st.columns([1, 3])
    decided = show_col.selectbox("Show", lq.DECIDED, key=f"{PREFIX}_c_decided")
    min_probability = score_col.slider(
        "P(overlooked) at least", 0.0, 1.0, FLAG_THRESHOLD, 0.05, key=f"{PREFIX}_c_min"
    )
    frame = lq.candidates(project_reader, datasets, None, min_probability, decided)
    info, pager = st.columns([4, 1])
    with pager:
        page = _pager(len(frame), f"{PREFIX}_c_page")
    info.markdown(f"**{len(frame):,} boxes** a model found that no label accounts for")
    if frame.empty:
        st.info("No likely missing labels with these filters.")
        return
    _bulk_accept(project_reader, frame, "missing_probability", "candidate")
    _candidate_cards(project_reader, frame.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])


st.title(":material/rule: Label errors")
project_reader = reader()
datasets = require_datasets()
st.caption(SCORE_HELP)
metas = lq.scored_datasets(project_reader, datasets)
_evidence_note(metas, datasets, project_reader.project.root)
scored = [d for d in datasets if d in metas]
if len(scored) < len(datasets):
    action_panel(
        str(project_reader.project.root),
        "metrics",
        "Score the labels now",
        ":material/rule:",
        "Runs the label-error pass (and any metric not computed yet) in the background, as "
        f"`{_metrics_command(project_reader.project.root)}` does; progress shows here.",
    )
if not scored:
    st.info(f"No label-error scores yet. Compute them with `{_metrics_command(project_reader.project.root)}` "
            "(add `--embeddings` for neighbour and class evidence).")  # fmt: skip
    st.stop()
wrong_tab, missing_tab = st.tabs(["Wrong labels", "Missing labels"])
with wrong_tab:
    _wrong_labels(project_reader, scored)
with missing_tab:
    _missing_labels(project_reader, scored, metas)
st.caption(
    "Accepted fixes are applied by "
    f"`cocolens export coco --project {shlex.quote(str(project_reader.project.root))} --out fixed.json --apply-fixes`; "
    "decisions are also tags (`label-fix:accepted`, `label-fix:rejected`) usable in filters."
)
