"""Gallery widgets shared by the quality pages: metric picker, distribution chart, range, sort,
pagination, image and crop cards with annotations drawn, the detail dialog, and tagging.

Every control keeps its value in the URL (``?metric=…&lo=…&hi=…&sort=…&order=…&page=…``) so a
copied link reproduces the view; widgets read the URL once per session and write it on every run.
Data comes from :mod:`store.gallery_queries` (one page of rows per run), pictures from
:mod:`store.thumbnails` (disk cache).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from metrics import registry
from metrics.outliers import MODERATE_IQR, SEVERE_TEXT
from pages import sample_view
from pages.state import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    init_choice,
    init_state,
    query_value,
    reader,
    reset_view,
    selected_datasets,
)
from store import gallery_queries as gq
from store import issue_catalogue, page_summaries, thumbnails
from store import tags as tag_store
from store.queries import ProjectReader

# Cards per row, crops and images alike: 4 divides every page size (12, 24, 48), so no ragged last row,
# and leaves a crop's caption room for "object_area_relative = 0.003813" without breaking the word.
COLUMNS = 4
CARD_SIDE = 320  # px of the cached card picture (≈ a quarter of a wide layout)
CROP_SIDE = 192
DETAIL_SIDE = 960
MODERATE_COLOUR = "rgba(255, 165, 0, 0.14)"
SEVERE_COLOUR = "rgba(220, 40, 40, 0.16)"
DATASET_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
DEFAULT_TAG = "review"


# ----- cached summaries ----------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_call(name: str, root: str, signature: tuple, args: tuple, _reader: ProjectReader) -> Any:
    return page_summaries.summary(_reader, name, *args)


def cached(name: str, project_reader: ProjectReader, *args: Any) -> Any:
    """A store summary (histogram, bounds, class counts, means) cached until the project's files change.

    In memory keyed on :func:`store.gallery_queries.data_signature`, so an import committed by another
    process shows at the next run; below that on disk (:mod:`store.page_summaries`), so a fresh server
    process reads it instead of scanning. Galleries themselves are never cached (tags and pages change them).
    """
    frozen = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    root = str(project_reader.project.root)
    return _cached_call(name, root, gq.data_signature(project_reader), frozen, project_reader)


def issue_banner(prefix: str, issue: str | None) -> None:
    """Which issue the gallery shows, what it means, and a button that clears it."""
    if not issue:
        return
    with st.container(border=True):
        left, right = st.columns([5, 1])
        left.markdown(f"**Issue: {issue.replace('_', ' ')}** — {gq.issue_rule(issue)}.")
        right.button(
            "Clear issue",
            key=f"{prefix}_clear_issue",
            on_click=reset_view(prefix, "issue"),
            icon=":material/close:",
        )


def url_issue(level: str) -> str | None:
    """The ``?issue=`` of the URL when this level's gallery shows it; otherwise a warning and None."""
    issue = query_value("issue")
    if issue and issue not in (gq.IMAGE_ISSUES if level == "image" else gq.OBJECT_ISSUES):
        st.warning(f"`{issue}` is not an {level} issue; showing all {level}s.")
        return None
    return issue


def issue_metric(issue: str | None, default: str) -> str:
    """The metric an issue counts (its gallery opens on and sorts by it), else the page's default."""
    known = issue_catalogue.BY_NAME.get(issue or "")
    return known.metric if known and known.metric else default


def metric_with_distribution(
    prefix: str,
    project_reader: ProjectReader,
    names: list[str],
    default: str,
    level: str,
    datasets: list[str],
    issue: str | None,
) -> tuple[str, Any]:
    """The issue's banner (if any), then the metric picker (on the issue's metric, else ``default``)
    beside its distribution chart; returns (metric, the range chosen on the chart)."""
    issue_banner(prefix, issue)
    label = f"{level.capitalize()} metric"
    default = issue_metric(issue, default)
    chart_col, side_col = st.columns([3, 1])
    with side_col:
        metric = metric_picker(
            label, names, f"{prefix}_metric", default, on_change=reset_view(prefix, "sort", "order")
        )
    with chart_col:
        chosen, _bounds = distribution_section(prefix, project_reader, metric, level, datasets)
    return metric, chosen


# ----- metric help ---------------------------------------------------------------------------------------------


def metric_help(name: str) -> str:
    """Meaning, range and direction of a metric (from the registry), for every picker and chart."""
    spec = registry.specs_by_name().get(name)
    return (
        spec.help_text() if spec else f"`{name}`: custom metric without a registered spec (meaning unknown)."
    )


def metric_label(name: str) -> str:
    spec = registry.specs_by_name().get(name)
    return f"{name} ({spec.unit})" if spec and spec.unit else name


def worst_first_descending(name: str) -> bool:
    """Sort so the worst items come first: high values first for lower-is-better metrics."""
    spec = registry.specs_by_name().get(name)
    return bool(spec and spec.direction == "lower_better")


# ----- URL-backed state ----------------------------------------------------------------------------------------


def metric_picker(
    label: str, names: list[str], key: str, default: str | None, on_change: Callable | None = None
) -> str:
    """A selectbox of metrics; its help and the caption under it give meaning, range and direction."""
    init_choice(key, "metric", str, names, default if default in names else names[0])
    chosen = st.selectbox(
        label,
        names,
        key=key,
        format_func=metric_label,
        help="Every metric stored for this level. " + metric_help(st.session_state[key]),
        on_change=on_change,
    )
    st.caption(metric_help(chosen))
    return chosen


# ----- distribution chart and range ----------------------------------------------------------------------------


def dataset_colours(datasets: list[str]) -> dict[str, str]:
    """One colour per dataset, the same on every chart of the app (by sorted name)."""
    return {name: DATASET_COLOURS[i % len(DATASET_COLOURS)] for i, name in enumerate(sorted(datasets))}


def bad_ends(metric: str) -> tuple[bool, bool]:
    """Which ends of a metric's distribution are problems: (low end, high end). Higher is better: only
    the low end; lower is better: only the high end; neutral or unknown: both."""
    spec = registry.specs_by_name().get(metric)
    direction = spec.direction if spec else "neutral"
    return direction != "lower_better", direction != "higher_better"


def outlier_text(metric: str) -> str:
    """How the chart shades outliers, for its caption."""
    bad_low, bad_high = bad_ends(metric)
    side = (
        "" if bad_low and bad_high else (" on the low (worse) end" if bad_low else " on the high (worse) end")
    )
    return (
        f"Shaded{side}: moderate outliers (beyond {MODERATE_IQR:g}×IQR from the quartiles, orange) and severe "
        f"({SEVERE_TEXT}, red)" + ("" if not side else "; the better end's fences are grey")
    )


def distribution_figure(
    histogram: pd.DataFrame,
    bounds: dict[str, float | int],
    metric: str,
    log_y: bool = False,
    selected: tuple[float, float] | None = None,
    all_datasets: list[str] | None = None,
) -> go.Figure:
    """Overlaid per-dataset histogram with the moderate (1.5×IQR) and severe (2.5×IQR) outlier bands shaded."""
    fig = go.Figure()
    colours = dataset_colours(sorted({*histogram["dataset"].astype(str), *(all_datasets or [])}))
    for dataset, rows in histogram.groupby("dataset", sort=True):
        centres = (rows["bin_low"] + rows["bin_high"]) / 2
        fig.add_bar(
            x=centres,
            y=rows["count"],
            width=(rows["bin_high"] - rows["bin_low"]) * 0.95,
            name=str(dataset),
            marker_color=colours[str(dataset)],
            opacity=0.6,
            customdata=rows[["bin_low", "bin_high"]].to_numpy(),
            hovertemplate=f"{dataset}<br>{metric} %{{customdata[0]:.4g}} – %{{customdata[1]:.4g}}<br>"
            "%{y} items<extra></extra>",
        )
    low, high = float(bounds["min"]), float(bounds["max"])
    pad = (high - low) * 0.02 or 0.5
    bad_low, bad_high = bad_ends(metric)
    bands = [
        (bounds["severe_low"], bounds["moderate_low"], MODERATE_COLOUR, "moderate", bad_low),
        (bounds["moderate_high"], bounds["severe_high"], MODERATE_COLOUR, "moderate", bad_high),
        (low - pad, bounds["severe_low"], SEVERE_COLOUR, "severe", bad_low),
        (bounds["severe_high"], high + pad, SEVERE_COLOUR, "severe", bad_high),
    ]
    for start, end, colour, name, bad in bands:
        if not bad:  # the good end of a metric with a direction: unusual, not a problem
            continue
        start, end = max(float(start), low - pad), min(float(end), high + pad)
        if math.isfinite(start) and math.isfinite(end) and end > start:
            fig.add_vrect(
                x0=start,
                x1=end,
                fillcolor=colour,
                line_width=0,
                layer="below",
                annotation_text=name,
                annotation_position="top left",
                annotation_font_size=11,
            )
    for fence in ("moderate_low", "moderate_high", "severe_low", "severe_high"):
        value = float(bounds[fence])
        if low - pad <= value <= high + pad and math.isfinite(value):
            dash = "dot" if fence.startswith("moderate") else "dash"
            bad = bad_low if fence.endswith("_low") else bad_high
            colour = ("#a05000" if dash == "dot" else "#b00000") if bad else "#9a9a9a"
            fig.add_vline(x=value, line_dash=dash, line_width=1, line_color=colour)
    if selected is not None:
        fig.add_vrect(
            x0=selected[0], x1=selected[1], line_width=2, line_color="#1f4e9e", fillcolor="rgba(0,0,0,0)"
        )
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        height=330,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title=metric_label(metric),
        yaxis_title="count (log)" if log_y else "count",
        yaxis_type="log" if log_y else "linear",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""),
        dragmode="select",
        selectdirection="h",
    )
    return fig


def selection_range(event: Any) -> tuple[float, float] | None:
    """The x range of a plotly box selection, else the span of the selected bars' bins."""
    if not event:
        return None
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if not selection:
        return None
    boxes = selection.get("box") or []
    for box in boxes:
        xs = box.get("x") or []
        if len(xs) >= 2:
            return float(min(xs)), float(max(xs))
    points = selection.get("points") or []
    lows, highs = [], []
    for point in points:
        custom = point.get("customdata")
        if custom is not None and len(custom) >= 2:
            lows.append(float(custom[0]))
            highs.append(float(custom[1]))
        elif point.get("x") is not None:
            lows.append(float(point["x"]))
            highs.append(float(point["x"]))
    if lows:
        return min(lows), max(highs)
    return None


def slider_step(low: float, high: float) -> float:
    span = high - low
    if span <= 0:
        return 1.0
    return float(f"{span / 200:.2g}")


def step_decimals(step: float) -> int:
    """Decimal places the browser keeps of a slider value (it rounds every value to its step's precision)."""
    text = f"{step:.10f}".rstrip("0")
    return max(0, len(text) - text.index(".") - 1) if "." in text else 0


def slider_edges(low: float, high: float) -> tuple[float, float, float]:
    """(min, max, step) of a range slider whose ends lie on its step grid, outside the data's extremes.

    Why: the browser snaps every slider value to ``min + k·step`` rounded to the step's decimals, so a
    slider whose min is the data's minimum (0.052097) sends back 0.0521 and the extreme item falls out.
    With ends on the grid, rounded outwards, the handles at the ends mean "everything" exactly.
    """
    step = slider_step(low, high)
    decimals = step_decimals(step)
    start = round(math.floor(low / step) * step, decimals)
    if start > low:
        start = round(start - step, decimals)
    end = round(start + math.ceil((high - start) / step) * step, decimals)
    if end < high:
        end = round(end + step, decimals)
    return start, end, step


def inclusive_range(
    value: tuple[float, float], edges: tuple[float, float, float], low: float, high: float
) -> tuple[float, float] | None:
    """The slider's value as a filter: a handle within half a step of its end stands for the data's
    real extreme (so the min/max item is kept); both at the ends: None (no filter)."""
    start, end, step = edges
    chosen_low, chosen_high = float(value[0]), float(value[1])
    at_start = chosen_low <= start + step / 2 or chosen_low <= low
    at_end = chosen_high >= end - step / 2 or chosen_high >= high
    if at_start and at_end:
        return None
    return (low if at_start else chosen_low, high if at_end else chosen_high)


def range_controls(prefix: str, metric: str, bounds: dict[str, float | int]) -> tuple[float, float] | None:
    """The chart's selection or the slider: the chosen [low, high], or None for the whole range.

    A handle at either end of the slider keeps the real extreme item (see :func:`slider_edges`).
    """
    low, high = float(bounds["min"]), float(bounds["max"])
    key = f"{prefix}_range"
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        st.caption(f"All values of `{metric}` are {low:g}: nothing to narrow.")
        return None
    edges = slider_edges(low, high)
    start, end, step = edges
    init_state(key, "lo", lambda raw: (float(raw), _url_float("hi", end)), (start, _url_float("hi", end)))
    current = st.session_state[key]
    st.session_state[key] = (max(start, min(float(current[0]), end)), min(end, max(float(current[1]), start)))
    value = st.slider(
        f"Range of {metric}",
        min_value=start,
        max_value=end,
        step=step,
        key=key,
        format="%.4g",
        on_change=_reset_page(prefix),
        help="Narrows the gallery to items in this range (or drag a box over the chart). A handle at an end "
        "keeps everything beyond it. " + metric_help(metric),
    )
    return inclusive_range(value, edges, low, high)


def _url_float(query_key: str, fallback: float) -> float:
    raw = query_value(query_key)
    return float(raw) if raw is not None else fallback


def _reset_page(prefix: str) -> Callable[[], None]:
    def reset() -> None:
        st.session_state[f"{prefix}_page"] = 1

    return reset


def chart_selection_callback(prefix: str, bounds: dict[str, float | int]) -> Callable[[], None]:
    """On a chart selection, move the range slider to it (callbacks run before the script, so this is allowed)."""

    def apply() -> None:
        picked = selection_range(st.session_state.get(f"{prefix}_chart"))
        if picked is None:
            return
        start, end, _step = slider_edges(float(bounds["min"]), float(bounds["max"]))
        st.session_state[f"{prefix}_range"] = (max(start, picked[0]), min(end, picked[1]))
        st.session_state[f"{prefix}_page"] = 1

    return apply


def distribution_section(
    prefix: str, project_reader: ProjectReader, metric: str, level: gq.Level, datasets: list[str]
) -> tuple[tuple[float, float] | None, dict[str, float | int]]:
    """Chart + log toggle + range slider for one metric; returns (chosen range or None, bounds)."""
    bounds = cached("metric_bounds", project_reader, metric, level, list(datasets))
    if bounds["count"] == 0:
        st.info(f"No values of `{metric}` in the chosen datasets.")
        return None, bounds
    init_state(f"{prefix}_log", "log", lambda raw: raw == "1", False)
    log_y = st.toggle("Log count axis", key=f"{prefix}_log", help="Makes rare values (outliers) visible.")
    histogram = cached("metric_histogram", project_reader, metric, level, list(datasets))
    current = st.session_state.get(f"{prefix}_range")
    figure = distribution_figure(
        histogram, bounds, metric, log_y, tuple(current) if current else None, project_reader.datasets()
    )
    st.plotly_chart(
        figure,
        key=f"{prefix}_chart",
        on_select=chart_selection_callback(prefix, bounds),
        selection_mode=("box", "points"),
        width="stretch",
    )
    st.caption(
        f"**{metric}** — {metric_help(metric)} {outlier_text(metric)}. {bounds['count']:,} values; Q1 {bounds['q1']:.4g}, "
        f"Q3 {bounds['q3']:.4g}. Drag a box over the chart or use the slider to filter the gallery."
    )
    chosen = range_controls(prefix, metric, bounds)
    return chosen, bounds


# ----- sort, pagination, tags ----------------------------------------------------------------------------------


def sort_controls(prefix: str, names: list[str], default_metric: str) -> tuple[str, bool]:
    """Sort metric and direction (URL: sort, order)."""
    init_choice(f"{prefix}_sort", "sort", str, names, default_metric)
    init_state(
        f"{prefix}_order",
        "order",
        lambda raw: "descending" if raw == "desc" else "ascending",
        "descending" if worst_first_descending(default_metric) else "ascending",
    )
    left, right = st.columns([2, 1])
    with left:
        sort_metric = st.selectbox(
            "Sort gallery by",
            names,
            key=f"{prefix}_sort",
            format_func=metric_label,
            on_change=_reset_page(prefix),
            help=metric_help(st.session_state[f"{prefix}_sort"]),
        )
    with right:
        order = st.radio(
            "Order",
            ["ascending", "descending"],
            key=f"{prefix}_order",
            horizontal=True,
            on_change=_reset_page(prefix),
            help="Items without a value for the sort metric come last either way.",
        )
    return sort_metric, order == "descending"


def page_controls(prefix: str, total: int) -> tuple[int, int]:
    """Page size and 1-based page number (URL: page, size); returns (0-based page, page size)."""
    init_choice(f"{prefix}_size", "size", int, PAGE_SIZES, DEFAULT_PAGE_SIZE)
    size = int(st.session_state[f"{prefix}_size"])
    pages = gq.page_count(total, size)
    init_state(f"{prefix}_page", "page", int, 1)
    st.session_state[f"{prefix}_page"] = max(1, min(int(st.session_state[f"{prefix}_page"]), pages))

    def step(delta: int) -> Callable[[], None]:
        def move() -> None:
            st.session_state[f"{prefix}_page"] = max(
                1, min(st.session_state[f"{prefix}_page"] + delta, pages)
            )

        return move

    cols = st.columns([1, 1, 2, 2, 4])
    cols[0].button(
        "Prev",
        key=f"{prefix}_prev",
        icon=":material/chevron_left:",
        on_click=step(-1),
        disabled=st.session_state[f"{prefix}_page"] <= 1,
    )
    cols[1].button(
        "Next",
        key=f"{prefix}_next",
        icon=":material/chevron_right:",
        on_click=step(1),
        disabled=st.session_state[f"{prefix}_page"] >= pages,
    )
    cols[2].number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=f"{prefix}_page")
    cols[3].selectbox("Per page", PAGE_SIZES, key=f"{prefix}_size", on_change=_reset_page(prefix))
    cols[4].markdown(f"<div style='padding-top:2.1rem'>{total:,} items</div>", unsafe_allow_html=True)
    return int(st.session_state[f"{prefix}_page"]) - 1, size


def tag_controls(prefix: str, project_root: str) -> tuple[str, pd.DataFrame | None, str | None]:
    """Tag name for the card buttons, and a filter by an existing tag (URL: tag)."""
    existing = tag_store.all_tags(project_root)
    init_choice(f"{prefix}_tag_filter", "tag", str, ["", *existing], "")
    left, right = st.columns(2)
    with left:
        tag_name = (
            st.text_input(
                "Tag to apply",
                value=DEFAULT_TAG,
                key=f"{prefix}_tag_name",
                help="The tag the tag buttons on the cards add or remove; tags are shared by every page and the export.",
            ).strip()
            or DEFAULT_TAG
        )
    with right:
        tag_filter = st.selectbox(
            "Show only items tagged",
            ["", *existing],
            key=f"{prefix}_tag_filter",
            format_func=lambda t: t or "(any: no tag filter)",
            on_change=_reset_page(prefix),
        )
    tag_manager(prefix, project_root)
    keys = tag_store.tagged(project_root, tag_filter) if tag_filter else None
    return tag_name, keys, tag_filter or None


def tag_all_button(
    prefix: str, project_root: str, project_reader: ProjectReader, f: gq.GalleryFilter, tag: str, total: int
) -> None:
    """Tag, or untag, every item passing the current filter (all pages), after a confirmation that
    says how many items it touches; one transaction per dataset."""
    pending_key = f"{prefix}_bulk_pending"
    items = "images" if f.level == "image" else "objects"
    left, right, _ = st.columns([2, 2, 3])
    for column, action, label, key, icon, says in (
        (left, "add", f"Tag all {total:,} with “{tag}”…", "tag_all", ":material/sell:", f"Adds “{tag}” to"),
        (
            right,
            "remove",
            f"Untag all {total:,}…",
            "untag_all",
            ":material/label_off:",
            f"Removes “{tag}” from",
        ),
    ):
        if column.button(
            label,
            key=f"{prefix}_{key}",
            icon=icon,
            disabled=not total,
            help=f"{says} every {items[:-1]} in the current filter, on every page (asks first).",
        ):
            st.session_state[pending_key] = (action, tag, total)
    pending = st.session_state.get(pending_key)
    if not pending:
        return
    action, pending_tag, count = pending
    if pending_tag != tag or count != total:  # the filter or the tag changed since: ask again
        st.session_state.pop(pending_key, None)
        return
    with st.container(border=True):
        verb = (
            f"Tag all {count:,} {items} in the current filter with"
            if action == "add"
            else (f"Remove the tag from all {count:,} {items} in the current filter:")
        )
        st.warning(f"{verb} “{tag}”?", icon=":material/warning:")
        yes, no, _ = st.columns([1, 1, 4])
        confirmed = yes.button("Confirm", key=f"{prefix}_bulk_confirm", type="primary")
        if no.button("Cancel", key=f"{prefix}_bulk_cancel"):
            st.session_state.pop(pending_key, None)
            st.rerun()
    if not confirmed:
        return
    st.session_state.pop(pending_key, None)
    keys = gq.filter_keys(project_reader, f)
    if f.level == "image":
        keys = keys[["dataset", "image_id"]]
    changed = tag_store.apply_keys(project_root, keys, tag, action)
    if action == "add":
        st.toast(f"Tagged {changed:,} {items} with “{tag}” ({len(keys) - changed:,} already had it).")
    else:
        st.toast(f"Removed “{tag}” from {changed:,} {items} ({len(keys) - changed:,} did not have it).")
    st.rerun()


def tag_manager(prefix: str, project_root: str) -> None:
    """Every tag with its counts; rename one (merging into an existing name) or delete it everywhere."""
    counts = tag_store.tag_counts(project_root)
    done = st.session_state.pop(f"{prefix}_manage_done", None)
    if done:
        st.success(done, icon=":material/check:")
    with st.expander(f"Manage tags ({len(counts)})", icon=":material/sell:"):
        if counts.empty:
            st.caption("No tags yet: tag items on any gallery, on Filter & export, or with `cocolens tag`.")
            return
        st.dataframe(counts, hide_index=True, width="stretch")
        names = counts["tag"].tolist()
        pick, new_name, rename_col, delete_col = st.columns([2, 2, 1, 1])
        chosen = pick.selectbox("Tag", names, key=f"{prefix}_manage_tag")
        renamed = new_name.text_input(
            "New name", key=f"{prefix}_manage_new", placeholder="e.g. review"
        ).strip()
        rename_col.write("")
        if rename_col.button(
            "Rename", key=f"{prefix}_manage_rename", disabled=not renamed or renamed == chosen
        ):
            changed = tag_store.rename_tag(project_root, chosen, renamed)
            for suffix in ("manage_tag", "manage_new"):
                st.session_state.pop(f"{prefix}_{suffix}", None)
            st.session_state[f"{prefix}_manage_done"] = (
                f"Renamed “{chosen}” to “{renamed}” on {changed:,} items."
            )
            st.rerun()
        delete_col.write("")
        row = counts.set_index("tag").loc[chosen]
        carried = int(row["images"]) + int(row["objects"])
        if delete_col.button("Delete…", key=f"{prefix}_manage_delete"):
            st.session_state[f"{prefix}_manage_pending"] = chosen
        if st.session_state.get(f"{prefix}_manage_pending") == chosen:
            st.warning(
                f"Delete “{chosen}” from all {carried:,} items that carry it?", icon=":material/warning:"
            )
            yes, no, _ = st.columns([1, 1, 4])
            if yes.button("Delete", key=f"{prefix}_manage_confirm", type="primary"):
                changed = tag_store.delete_tag(project_root, chosen)
                st.session_state.pop(f"{prefix}_manage_tag", None)
                st.session_state.pop(f"{prefix}_manage_pending", None)
                st.session_state[f"{prefix}_manage_done"] = f"Deleted “{chosen}” from {changed:,} items."
                st.rerun()
            if no.button("Cancel", key=f"{prefix}_manage_cancel"):
                st.session_state.pop(f"{prefix}_manage_pending", None)
                st.rerun()


def tag_button(
    prefix: str, project_root: str, key: tag_store.Key, tag: str, tagged: set[tag_store.Key], note: str = ""
) -> None:
    """A card's tag button: pressed when the image or object ``key`` carries ``tag`` (``tagged``, read
    once per page with :func:`store.tags.tagged_keys`); a click adds or removes it."""
    present = key in tagged
    what = "image" if key[2] is None else "object"
    st.button(
        tag,
        icon=":material/check:" if present else ":material/sell:",
        key=f"{prefix}_tag_{'_'.join(str(part) for part in key if part is not None)}",
        on_click=lambda: tag_store.toggle(project_root, key, tag, present),
        width="stretch",
        type="primary" if present else "secondary",
        help=f"{'Remove' if present else 'Add'} the tag “{tag}” on this {what}{note}.",
    )


# ----- saved views -------------------------------------------------------------------------------------------


def saved_views(page: str, prefix: str, project_root: str) -> None:
    """In the sidebar: save this page's current view (its URL state: filter, ranges, classes, tags, sort)
    under a name, and every saved view of the project as a link that reopens it. Call it last, once the
    page has written its state into the URL."""
    from store import views as view_store

    count = len(view_store.list_views(project_root))
    with st.sidebar.expander(f"Saved views ({count})", icon=":material/bookmarks:"):
        name = st.text_input(
            "Name this view", key=f"{prefix}_view_name", placeholder="e.g. blurry dates"
        ).strip()
        if st.button(
            "Save view", key=f"{prefix}_view_save", icon=":material/bookmark_add:", disabled=not name
        ):
            query = {key: st.query_params.get_all(key) for key in st.query_params}
            view_store.save_view(project_root, name, page, query)
            st.toast(f"Saved the view “{name}”.")
        saved = view_store.list_views(project_root)
        if not saved:
            st.caption("None yet: views saved here are shared by everyone using this project.")
        for view in saved:
            link, remove = st.columns([5, 1])
            with link:
                query = {k: v if len(v) > 1 else v[0] for k, v in view["query"].items() if v}
                try:
                    st.page_link(view["page"], label=view["name"], query_params=query)
                except StreamlitAPIException:  # page run alone (tests): plain text
                    st.caption(view["name"])
            if remove.button("", key=f"{prefix}_view_delete_{view['name']}", icon=":material/delete:",
                             help=f"Forget “{view['name']}”."):  # fmt: skip
                view_store.delete_view(project_root, view["name"])
                st.rerun()


# ----- legend and cards -------------------------------------------------------------------------------------


def legend(categories: pd.DataFrame, project_reader: ProjectReader | None = None) -> None:
    """Colour chips naming each class drawn (colours as in the pictures: one per class name)."""
    if categories.empty:
        return
    if "colour_id" not in categories.columns:
        categories = gq.with_colour_ids(project_reader or reader(), categories)
    chips = []
    shown = categories[["category", "colour_id"]].drop_duplicates("category").sort_values("category")
    for row in shown.itertuples(index=False):
        colour = thumbnails.colour_hex(int(row.colour_id)) if pd.notna(row.colour_id) else "#999999"
        chips.append(
            f"<span style='display:inline-block;margin:0 12px 4px 0;white-space:nowrap'>"
            f"<span style='display:inline-block;width:12px;height:12px;background:{colour};"
            f"border:1px solid #333;margin-right:4px;vertical-align:middle'></span>{html.escape(str(row.category))}</span>"
        )
    st.markdown("**Classes:** " + "".join(chips), unsafe_allow_html=True)


def _short(text: str, limit: int = 30) -> str:
    """Keep card captions on one line: a long name keeps its start (``batch_12/…``, the part that tells
    files apart in a folder listing) and its end (``…000123.jpg``); the middle is elided."""
    if len(text) <= limit:
        return text
    head = (limit - 1) * 3 // 5
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _dataset_note(dataset: str) -> str:
    """``dataset · `` on a card when several datasets are shown, else nothing."""
    return f"{html.escape(str(dataset))} · " if len(selected_datasets()) > 1 else ""


def _value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "—"
    return f"{float(value):.4g}"


def open_detail(dataset: str, image_id: int, object_id: int | None = None) -> Callable[[], None]:
    def open_() -> None:
        st.query_params["detail"] = f"{dataset}|{int(image_id)}"
        if object_id is None:
            st.query_params.pop("object", None)
        else:
            st.query_params["object"] = str(int(object_id))

    return open_


def close_detail() -> None:
    st.query_params.pop("detail", None)
    st.query_params.pop("object", None)


def range_filter(
    level: gq.Level,
    datasets: list[str],
    metric: str,
    chosen: tuple[float, float] | None,
    issue: str | None,
    tag_keys: pd.DataFrame | None,
    category_ids: list[tuple[str, int]] | None = None,
) -> gq.GalleryFilter:
    """The gallery's filter: the range chosen on ``metric``'s chart (none: no range), issue, tag, classes."""
    return gq.GalleryFilter(
        level=level,
        datasets=datasets,
        metric=metric if chosen else None,
        low=chosen[0] if chosen else None,
        high=chosen[1] if chosen else None,
        issue=issue,
        tag_keys=tag_keys,
        category_ids=category_ids,
    )


def gallery_grid(
    prefix: str,
    project_reader: ProjectReader,
    f: gq.GalleryFilter,
    notes: list[str],
    sort_metric: str | None,
    descending: bool,
    tag_name: str,
) -> tuple[int, int]:
    """How many items pass ``f`` (with the non-empty ``notes`` naming the filters), page controls,
    tag-all, and one page of image or crop cards; returns (page, page size) for the URL."""
    total = gq.count_items(project_reader, f)
    st.markdown(f"**{total:,} {f.level}s** " + (" · ".join(n for n in notes if n) or "(no filter)"))
    page, size = page_controls(prefix, total)
    tag_all_button(prefix, str(project_reader.project.root), project_reader, f, tag_name, total)
    items = gq.page_items(project_reader, f, sort_metric, descending, page, size)
    cards = image_cards if f.level == "image" else crop_cards
    cards(project_reader, items, sort_metric, tag_name, prefix)
    return page, size


def _objects_of(project_reader: ProjectReader, items: pd.DataFrame) -> pd.DataFrame:
    """Every object of the items' images (what their pictures draw)."""
    keys = list({(r.dataset, int(r.image_id)) for r in items.itertuples(index=False)})
    return gq.image_objects(project_reader, keys)


def card_pictures(
    project_reader: ProjectReader,
    items: pd.DataFrame,
    level: str,
    side: int,
    objects: pd.DataFrame | None = None,
) -> list[Path]:
    """Cached card pictures, one per item row: whole images with their annotations drawn (``level``
    image) or object crops with context (``level`` object, the row's ``object_id`` cropped), at most
    ``side`` px. ``objects`` = the items' images' objects when the caller already read them."""
    objects = _objects_of(project_reader, items) if objects is None else objects
    by_image = {key: group for key, group in objects.groupby(["dataset", "image_id"])}
    empty = objects.iloc[0:0]
    jobs = []
    for row in items.itertuples(index=False):
        if level == "object":
            options = thumbnails.DrawOptions(max_side=side, crop_object=int(row.object_id), box=(side, side))
        else:
            options = thumbnails.DrawOptions(max_side=side, box=(side, side * 3 // 4))
        jobs.append((row._asdict(), by_image.get((row.dataset, row.image_id), empty), options))
    return thumbnails.thumbnail_paths(str(project_reader.project.root), jobs)


def image_cards(
    project_reader: ProjectReader, items: pd.DataFrame, sort_metric: str | None, tag: str | None, prefix: str
) -> None:
    """A grid of images with annotations drawn; each card opens its detail and toggles the tag."""
    if items.empty:
        st.info("No images match these filters.")
        return
    objects = _objects_of(project_reader, items)
    legend(objects)
    paths = card_pictures(project_reader, items, "image", CARD_SIDE, objects)
    _card_grid(prefix, project_reader, items, paths, COLUMNS, sort_metric, tag)


def crop_cards(
    project_reader: ProjectReader, items: pd.DataFrame, sort_metric: str | None, tag: str | None, prefix: str
) -> None:
    """A grid of object crops (with context); each opens its image with the object highlighted."""
    if items.empty:
        st.info("No objects match these filters.")
        return
    legend(items, project_reader)
    paths = card_pictures(project_reader, items, "object", CROP_SIDE)
    _card_grid(prefix, project_reader, items, paths, COLUMNS, sort_metric, tag)


def _card_grid(
    prefix: str,
    project_reader: ProjectReader,
    items: pd.DataFrame,
    paths: list[Path],
    per_row: int,
    sort_metric: str | None,
    tag: str | None,
) -> None:
    """The cards of :func:`image_cards` / :func:`crop_cards` (rows with an ``object_id`` are crops):
    picture, name and sort value, the button opening the sample view, the tag button."""
    root = str(project_reader.project.root)
    tagged = tag_store.tagged_keys(root, tag) if tag else set()
    columns = st.columns(per_row)
    for index, (row, path) in enumerate(zip(items.itertuples(index=False), paths, strict=True)):
        crop = not pd.isna(row.object_id)
        object_id = int(row.object_id) if crop else None
        where = f"dataset {row.dataset}, image id {row.image_id}"
        value = f"{sort_metric} = {_value_text(row.sort_value)}" if sort_metric else ""
        with columns[index % per_row].container(border=True):
            st.image(str(path), width="stretch")
            if crop:
                name = _short(str(row.category), 24)
            else:
                group = "" if pd.isna(row.duplicate_group) else f" · group {int(row.duplicate_group)}"
                name, value = _short(str(row.file_name)), value + group
            # No help icon on the caption: the button's help names the same item, and each tooltip is
            # one more popover the browser builds per card on every visit (small: ~0.003 CPU-s each).
            st.caption(f"**{html.escape(name)}**  \n{_dataset_note(row.dataset)}{value}")
            st.button(
                "In image" if crop else "Details",
                icon=":material/zoom_in:",
                key=f"{prefix}_detail_{row.dataset}_{row.image_id}" + (f"_{object_id}" if crop else ""),
                on_click=open_detail(row.dataset, int(row.image_id), object_id),
                width="stretch",
                help=f"{row.category}: object {row.object_id} in {row.file_name} ({where})."
                if crop
                else f"{row.file_name} — {where}: all its metrics and objects.",
            )
            if tag:
                tag_button(prefix, root, (str(row.dataset), int(row.image_id), object_id), tag, tagged)


# ----- detail --------------------------------------------------------------------------------------------------


def _metric_table(values: pd.DataFrame) -> pd.DataFrame:
    table = values.assign(**registry.explain(values["metric"]))
    return table[["metric", "value", "range", "direction", "meaning"]]


def detail_body(project_reader: ProjectReader, dataset: str, image_id: int, object_id: int | None) -> None:
    """The sample view of one image (pages/sample_view.py), with this module's metric help."""
    specs = registry.specs_by_name()
    sample_view.sample_body(
        project_reader,
        dataset,
        image_id,
        object_id,
        _metric_table,
        lambda name: metric_help(name) if name in specs else "",
    )


@st.dialog("Sample", width="large", on_dismiss=close_detail)
def detail_dialog(dataset: str, image_id: int, object_id: int | None) -> None:
    detail_body(reader(), dataset, image_id, object_id)
    st.button("Close", key="detail_close", on_click=close_detail)


def show_detail_from_url(order: tuple[gq.GalleryFilter, str | None, bool] | None = None) -> None:
    """Open the sample view named by ``?detail=DATASET|IMAGE_ID[&object=ID]`` (a link reproduces it);
    ``order`` = (filter, sort metric, descending) of the page's gallery, for previous / next."""
    if order is None:
        sample_view.clear_order()
    else:
        sample_view.set_order(*order)
    raw = query_value("detail")
    if not raw or "|" not in raw:
        return
    dataset, _, image = raw.rpartition("|")
    try:
        image_id = int(image)
        object_raw = query_value("object")
        object_id = int(object_raw) if object_raw else None
    except ValueError:
        return
    detail_dialog(dataset, image_id, object_id)
