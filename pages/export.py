"""Filter & export: build a filter, see live how many images/objects match, tag them, export COCO or CSV.

URL: the filter lives in ``f_*`` query parameters (see ``store.filters.Filter.to_query``), e.g.
``?f_ds=taco&f_cls=Bottle&f_range=object_area_relative::0.001&f_out=brightness:severe&f_tag=review``.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from metrics import registry
from metrics.outliers import MODERATE_IQR, MODERATE_TEXT, SEVERE_TEXT
from pages.gallery import saved_views, tag_manager
from pages.state import reader, selected_datasets, set_query
from store import export_queries
from store import tags as tag_store
from store.errors import InputError
from store.filters import (
    OUTLIER_LEVELS,
    Filter,
    cli_where,
    inclusive_bounds,
    match_counts,
    matching_images,
    matching_objects,
    metric_levels,
    write_filtered_csv,
)
from store.issue_catalogue import NAMES as ISSUES

DOWNLOAD_LIMIT = 200 * 1024**2  # larger files are only written to disk (the browser would hold it in memory)
WHERE_HELP = (
    "A SQL condition evaluated per object (and per image without objects). Columns: dataset, image_id, "
    "object_id, file_name, category, bbox_x/y/w/h, iscrowd, every object metric by name, every image metric "
    "by name or as image_<name>; has_tag('TAG') is true when the image, or the object, carries TAG. "
    "Operators: = <> < > <= >=, AND OR NOT, + - * / %, IN (…), BETWEEN, LIKE, IS NULL. "
    "Example: `category = 'Bottle' AND object_area_relative < 0.001 AND NOT has_tag('reviewed')`."
)


def shell_word(text: str) -> str:
    """One shell word in double quotes (readable with the single quotes SQL uses)."""
    for char in ("\\", '"', "$", "`"):
        text = text.replace(char, "\\" + char)
    return f'"{text}"'


st.title(":material/filter_alt: Filter & export")
project_reader = reader()
all_datasets = project_reader.datasets()
if not all_datasets:
    st.info(
        "This project has no datasets yet. Import one: `cocolens import coco --images DIR --annotations FILE --project DIR`."
    )
    st.stop()
root = project_reader.project.root
specs = registry.specs_by_name()
levels = metric_levels(project_reader)
metric_names = sorted(levels)


def _help(metric: str) -> str:
    spec = specs.get(metric)
    return f"{levels.get(metric, '')} metric. " + (spec.help_text() if spec else "Custom metric.")


# ----- initial state from the URL (only when the widgets have no state yet) ------------------------
if "fx_init" not in st.session_state:
    url = Filter.from_query({key: st.query_params.get_all(key) for key in st.query_params})
    st.session_state["fx_init"] = True
    st.session_state["fx_ds"] = [d for d in url.datasets if d in all_datasets] or selected_datasets()
    st.session_state["fx_cls"] = url.classes
    st.session_state["fx_range_metrics"] = [m for m in url.ranges if m in levels]
    for metric, (lo, hi) in url.ranges.items():
        st.session_state[f"fx_lo_{metric}"] = lo
        st.session_state[f"fx_hi_{metric}"] = hi
    st.session_state["fx_tags"] = url.tags
    st.session_state["fx_out_metrics"] = [m for m in url.outliers if m in levels]
    st.session_state["fx_out_level"] = next(iter(url.outliers.values()), "any")
    st.session_state["fx_issue"] = url.issue if url.issue in ISSUES else None
    st.session_state["fx_where"] = url.where or ""

# ----- the filter builder ---------------------------------------------------------------------------
st.subheader("Filter")
col_a, col_b, col_c = st.columns(3)
with col_a:
    chosen_datasets = st.multiselect("Datasets", all_datasets, key="fx_ds")
    scope = chosen_datasets or all_datasets
    class_names = export_queries.class_names(project_reader, scope)
    st.session_state["fx_cls"] = [c for c in st.session_state.get("fx_cls", []) if c in class_names]
    classes = st.multiselect(
        "Classes", class_names, key="fx_cls", help="Objects of these classes (any if empty)."
    )
with col_b:
    known_tags = tag_store.all_tags(root)
    st.session_state["fx_tags"] = [t for t in st.session_state.get("fx_tags", []) if t in known_tags]
    chosen_tags = st.multiselect(
        "Tags", known_tags, key="fx_tags", help="Images or objects carrying any of these tags (tagged directly or "
        "through their image / one of their objects).",
    )  # fmt: skip
    issue = st.selectbox(
        "Issue", [None, *ISSUES], key="fx_issue", format_func=lambda v: "—" if v is None else v.replace("_", " "),
        help="Only what the Summary page counts under this issue.",
    )  # fmt: skip
with col_c:
    out_metrics = st.multiselect(
        "Outliers on", metric_names, key="fx_out_metrics",
        help=f"IQR outliers over the chosen datasets pooled: any = beyond {MODERATE_IQR:g}×IQR from the quartiles, "
        f"moderate = {MODERATE_TEXT}, severe = {SEVERE_TEXT}.",
    )  # fmt: skip
    out_level = st.radio("Outlier level", OUTLIER_LEVELS, key="fx_out_level", horizontal=True)

range_metrics = st.multiselect(
    "Metric ranges", metric_names, key="fx_range_metrics", help="Add a metric to keep only values in a range."
)
ranges: dict[str, tuple[float | None, float | None]] = {}
if range_metrics:
    bounds = export_queries.metric_bounds(project_reader, range_metrics, scope)
    for metric in range_metrics:
        row = bounds.loc[metric] if metric in bounds.index else None
        lo_col, hi_col, text_col = st.columns([1, 1, 3])
        data_lo = None if row is None else float(row["lo"])
        data_hi = None if row is None else float(row["hi"])
        st.session_state.setdefault(f"fx_lo_{metric}", data_lo)
        st.session_state.setdefault(f"fx_hi_{metric}", data_hi)
        lo = lo_col.number_input(
            f"{metric} ≥", value=None, key=f"fx_lo_{metric}", format="%.6g", help=_help(metric)
        )
        hi = hi_col.number_input(
            f"{metric} ≤", value=None, key=f"fx_hi_{metric}", format="%.6g", help=_help(metric)
        )
        seen = f"In these datasets: {data_lo:.6g} … {data_hi:.6g}." if row is not None else "No values here."
        text_col.caption(f"**{metric}** — {_help(metric)} {seen}")
        ranges[metric] = inclusive_bounds(lo, hi, data_lo, data_hi)

where = st.text_input(
    "Expert: SQL condition (`--where`)",
    key="fx_where",
    help=WHERE_HELP,
    placeholder="e.g. category = 'Bottle' AND object_area_relative < 0.001",
)

flt = Filter(
    datasets=list(chosen_datasets), classes=list(classes), ranges=ranges, tags=list(chosen_tags),
    outliers={m: out_level for m in out_metrics}, issue=issue, where=where.strip() or None,
)  # fmt: skip
set_query(**flt.to_query())
saved_views("pages/export.py", "fx", str(root))

try:
    counts = match_counts(project_reader, flt)
except InputError as exc:
    st.error(str(exc))
    st.stop()
count_a, count_b, count_c = st.columns([1, 1, 3])
count_a.metric("Matching images", f"{counts['images']:,}")
count_b.metric("Matching objects", f"{counts['objects']:,}")
with count_c:
    st.caption(
        "An object matches when it and its image pass every condition; an image matches when it passes the "
        "image conditions and, if any object condition is set, has a matching object. The same filter "
        "from a terminal is under Export."
    )
with st.expander("Preview (first 200 matching images)"):
    preview = matching_images(project_reader, flt, limit=200)
    if len(preview):
        st.dataframe(export_queries.image_files(project_reader, preview), hide_index=True, width="stretch")
    else:
        st.write("Nothing matches.")

# ----- tag everything in the filter ----------------------------------------------------------------
st.subheader("Tag")
tag_col, level_col, button_col, untag_col = st.columns([2, 2, 1, 1])
tag_name = tag_col.text_input(
    "Tag",
    key="fx_tag_name",
    placeholder="e.g. review",
    help="Added to (or removed from) everything matching.",
).strip()
tag_level = level_col.radio("Tag the matching", ["images", "objects"], key="fx_tag_level", horizontal=True)
matching = counts[tag_level]
for column, action, label, key, icon, says in (
    (button_col, "add", "Tag all…", "fx_tag_button", ":material/sell:", "Adds the tag to"),
    (untag_col, "remove", "Untag all…", "fx_untag_button", ":material/label_off:", "Removes the tag from"),
):
    column.write("")
    if column.button(
        label, key=key, icon=icon, disabled=not tag_name or not matching,
        help=f"{says} the {matching:,} matching {tag_level} (asks first).",
    ):  # fmt: skip
        st.session_state["fx_tag_pending"] = (action, tag_name, tag_level, matching)
pending = st.session_state.get("fx_tag_pending")
if pending and pending != (pending[0], tag_name, tag_level, matching):
    st.session_state.pop("fx_tag_pending", None)  # the filter, tag or level changed since: ask again
    pending = None
if pending:
    action = pending[0]
    question = (
        f"Tag all {matching:,} matching {tag_level} with '{tag_name}'?"
        if action == "add"
        else f"Remove '{tag_name}' from all {matching:,} matching {tag_level}?"
    )
    st.warning(question, icon=":material/warning:")
    yes, no, _ = st.columns([1, 1, 6])
    if no.button("Cancel", key="fx_tag_cancel"):
        st.session_state.pop("fx_tag_pending", None)
        st.rerun()
    if yes.button("Confirm", key="fx_tag_confirm", type="primary"):
        st.session_state.pop("fx_tag_pending", None)
        with st.spinner("Tagging…"):
            frame = (
                matching_images(project_reader, flt)
                if tag_level == "images"
                else matching_objects(project_reader, flt)
            )
            changed = tag_store.apply_keys(root, frame, tag_name, action)
            if action == "add":
                done = f"Tagged {changed:,} {tag_level} with '{tag_name}' ({len(frame) - changed:,} already had it)."
            else:
                done = f"Removed '{tag_name}' from {changed:,} {tag_level} ({len(frame) - changed:,} did not have it)."
        st.session_state["fx_tag_done"] = done
        st.rerun()
done = st.session_state.pop("fx_tag_done", None)
if done:
    st.success(done)
tag_manager("fx", str(root))

# ----- export -----------------------------------------------------------------------------------------
st.subheader("Export")
fmt = st.radio(
    "Format", ["COCO JSON", "CSV (images)", "CSV (objects)"], key="fx_format", horizontal=True,
    help="COCO keeps the original ids and categories and adds each image's content hash; CSV has one row per "
    "image or object with every metric as a column.",
)  # fmt: skip
exports_dir = root / "exports"
stamp = time.strftime("%Y%m%d-%H%M%S")
if fmt == "COCO JSON":
    export_scope = [d for d in (chosen_datasets or all_datasets)]
    ds_col, side_col, metric_col = st.columns([2, 1, 1])
    export_dataset = ds_col.selectbox(
        "Dataset to export", export_scope, key="fx_export_dataset",
        help="A COCO file holds one dataset (ids are only unique within one).",
    )  # fmt: skip
    max_side = side_col.number_input(
        "Max side (px, 0 = original)", min_value=0, value=0, step=64, key="fx_max_side",
        help="Downscale images so the longest side is at most this; boxes, polygons, RLE and areas are scaled "
        "with them and the images are written next to the JSON.",
    )  # fmt: skip
    with_metrics = metric_col.checkbox(
        "Metric values as attributes", key="fx_with_metrics",
        help='Adds "cocolens_metrics": {name: value} to every image and annotation.',
    )  # fmt: skip
    every_dataset = len(export_scope) > 1 and st.checkbox(
        f"Every selected dataset ({len(export_scope)}), one COCO file each", key="fx_every_dataset",
        help="Writes DATASET.json for each dataset in the filter into the folder below.",
    )  # fmt: skip
    per_dataset = matching_images(project_reader, flt)["dataset"].value_counts()
    if every_dataset:
        st.info(
            "Writes one COCO file per dataset into the folder below: "
            + ", ".join(f"**{d}**.json ({int(per_dataset.get(d, 0)):,} images)" for d in export_scope)
            + ".",
            icon=":material/info:",
        )
        default_out = exports_dir / f"coco-{stamp}"
    else:
        others = [d for d in export_scope if d != export_dataset]
        st.info(
            f"Exports **{export_dataset}** only ({int(per_dataset.get(export_dataset, 0)):,} of the "
            f"{counts['images']:,} matching images): a COCO file holds one dataset."
            + (
                f" Not in this file: {', '.join(f'**{d}**' for d in others)}; tick the box above for one file each."
                if others
                else ""
            ),
            icon=":material/info:",
        )
        default_out = exports_dir / f"{export_dataset}-{stamp}.json"
    expression, missing = cli_where(project_reader, flt)
    where_part = f" \\\n    --where {shell_word(expression)}" if expression else ""  # one flag a line
    command = "\n".join(
        f"cocolens export coco --project {shell_word(str(root))} --dataset {shell_word(d)} "
        f"--out {'DIR/' + d + '.json' if every_dataset else 'FILE'}{where_part}"
        for d in (export_scope if every_dataset else [export_dataset])
    )
    st.caption(
        "The same export from a terminal"
        + (
            f" (the {' and '.join(missing)} condition has no `--where` form: tag the matching items above, "
            "then use `has_tag('TAG')`)"
            if missing
            else ""
        )
        + ":"
    )
    st.code(command, language="bash", wrap_lines=True)
else:
    default_out = exports_dir / f"{'images' if 'images' in fmt else 'objects'}-{stamp}.csv"
out_text = st.text_input(
    "Write to", value=str(default_out), key=f"fx_out_{fmt}", help="Any path on this machine."
)

if st.button("Export", key="fx_export_button", type="primary"):
    out = Path(out_text).expanduser()
    try:
        with st.spinner("Exporting…"):
            if fmt == "COCO JSON":
                from store.coco_export import export_coco

                def export_one(dataset: str, target: Path) -> str:
                    in_dataset = Filter(**{**flt.__dict__, "datasets": [dataset]})
                    images = matching_images(project_reader, in_dataset)
                    objects = matching_objects(project_reader, in_dataset)
                    result = export_coco(
                        root, target, dataset=dataset, max_side=int(max_side) or None, with_metrics=with_metrics,
                        image_ids=images["image_id"].tolist(),
                        object_ids=list(zip(objects["image_id"].tolist(), objects["object_id"].tolist(), strict=True)),
                    )  # fmt: skip
                    text = f"{result['images']:,} images, {result['objects']:,} objects"
                    if result.get("images_dir"):
                        text += f"; {result['images_written']:,} resized images in `{result['images_dir']}`"
                    return text

                if every_dataset:
                    summary = "; ".join(f"{d}.json: {export_one(d, out / f'{d}.json')}" for d in export_scope)
                else:
                    summary = export_one(export_dataset, out)
                mime = "application/json"
            else:
                level = "image" if "images" in fmt else "object"
                rows = write_filtered_csv(project_reader, flt, out, level)
                summary = f"{rows:,} rows"
                mime = "text/csv"
        st.session_state["fx_last_export"] = (str(out), summary, mime)
    except InputError as exc:
        st.error(str(exc))

last = st.session_state.get("fx_last_export")
if last:
    path, summary, mime = last
    st.success(f"Wrote `{path}` ({summary}).")
    file = Path(path)
    if file.is_file() and file.stat().st_size <= DOWNLOAD_LIMIT:
        st.download_button(f"Download {file.name}", data=file.read_bytes(), file_name=file.name, mime=mime,
                           key="fx_download")  # fmt: skip
    elif file.is_file():
        st.caption(
            f"{file.stat().st_size / 1e6:.0f} MB: too large to offer in the browser; open it from disk."
        )
