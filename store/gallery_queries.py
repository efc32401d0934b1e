"""SQL behind the gallery pages: filter, sort and page images or objects without loading tables whole.

Every function returns only the rows a page draws (one histogram, one page of cards, one image's
details). Filters compose: datasets, a metric range, an issue (the same definitions and thresholds
as ``cocolens report``), a tag (keys given by ``store.tags``); sorting is by any metric, either
direction, nulls last; pagination is LIMIT/OFFSET.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from metrics.outliers import fences
from store import issue_catalogue as catalogue
from store.queries import ProjectReader

Level = Literal["image", "object"]

# The issues, their levels and the small-class bound come from the catalogue (re-exported for the pages).
SMALL_CLASS_OBJECTS = catalogue.SMALL_CLASS_OBJECTS
IMAGE_ISSUES = catalogue.IMAGE_ISSUES
OBJECT_ISSUES = catalogue.OBJECT_ISSUES


def issue_level(issue: str) -> Level:
    """Which gallery shows an issue: object issues on Label quality, image issues on Data quality."""
    return catalogue.get(issue).level


def issue_rule(issue: str) -> str:
    """One line saying what an issue means (shown above its gallery)."""
    return catalogue.get(issue).rule_text


@dataclass
class GalleryFilter:
    """What a gallery shows: one level, some datasets, optional metric range / issue / tag keys.

    Every condition set is ANDed; a None (or empty) field filters nothing.

    * ``level``: ``"image"`` (one row per image) or ``"object"`` (one row per labelled object).
    * ``datasets``: names to include; empty = every dataset of the project.
    * ``metric`` / ``low`` / ``high``: keep items whose stored value of ``metric`` (at ``level``) is
      within [low, high], both inclusive, in the metric's own unit (see its registry spec); a None
      bound is open; with both None, or ``metric`` None, no range applies. Items without a value of
      the metric fail a range.
    * ``issue``: a name of :data:`store.issue_catalogue.CATALOGUE` whose level is ``level`` (else
      ValueError; unknown: KeyError).
    * ``tag_keys``: dataset, image_id, object_id rows (object_id NULL = the whole image): an image
      passes when a row names it or one of its objects, an object when a row names it or its image.
    * ``category_ids``: (dataset, category_id) pairs; objects only, ignored at image level.
    """

    level: Level = "image"
    datasets: list[str] = field(default_factory=list)
    metric: str | None = None
    low: float | None = None
    high: float | None = None
    issue: str | None = None
    tag_keys: pd.DataFrame | None = None
    category_ids: list[tuple[str, int]] | None = None


def _placeholders(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def _metric_files(
    reader: ProjectReader, level: Level, metric: str, datasets: list[str] | None
) -> list[Path] | None:
    """The files holding one metric (``datasets/NAME/metrics/LEVEL__METRIC.parquet``); None if unsure.

    Why: the ``metric_values`` view opens every metric file of every dataset on each query (~0.2 s
    on a small project); reading the one or two files a question needs keeps a page under a second.
    """
    root = reader.project.datasets_dir
    names = datasets or reader.datasets()
    files = [root / name / "metrics" / f"{level}__{metric}.parquet" for name in names]
    found = [path for path in files if path.is_file()]
    if found:
        return found
    return None  # not stored under the usual name: ask the view


def metric_source(reader: ProjectReader, metric: str, level: Level, datasets: list[str] | None = None) -> str:
    """A FROM-able SQL source of one metric's rows (dataset, image_id, object_id, metric, version, value)."""
    files = _metric_files(reader, level, metric, datasets)
    if files is None:
        quoted = metric.replace("'", "''")
        cond = "object_id IS NULL" if level == "image" else "object_id IS NOT NULL"
        return f"(SELECT * FROM metric_values WHERE metric = '{quoted}' AND {cond})"
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    return f"read_parquet([{listed}], union_by_name=true)"


def data_signature(reader: ProjectReader) -> tuple:
    """Name, size, mtime and inode of every dataset file: changes whenever an import or metric run commits.

    Pages key in-memory cached summaries on it, as the on-disk cache keys its entries
    (:func:`store.summary_cache.data_signature`, the one listing both use).
    """
    from store.summary_cache import data_signature as files_signature

    return _frozen(files_signature(reader.project))


def _frozen(value: Any) -> Any:
    """Nested lists as nested tuples: hashable, for st.cache_data keys."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def stored_metric_names(reader: ProjectReader, level: Level) -> list[str]:
    """Metrics stored at this level, read from the file names (no query) when they follow the layout."""
    names: set[str] = set()
    for path in reader.project.datasets_dir.glob("*/metrics/*.parquet"):
        file_level, sep, name = path.stem.partition("__")
        if not sep or file_level not in ("image", "object", "prediction"):
            return reader.metric_names(level)  # a file outside the layout: the view knows
        if file_level == level:
            names.add(name)
    return sorted(names)


def _base_sql(reader: ProjectReader, f: GalleryFilter) -> tuple[str, list[Any], set[str]]:
    """SELECT of item keys with every filter applied; returns (sql, params, tables to register)."""
    params: list[Any] = []
    registered: set[str] = set()
    if f.level == "image":
        sql = "SELECT i.dataset, i.image_id, NULL::BIGINT AS object_id FROM images i WHERE true"
        alias = "i"
    else:
        sql = "SELECT o.dataset, o.image_id, o.object_id FROM objects o WHERE true"
        alias = "o"
    if f.datasets:
        sql += f" AND {alias}.dataset IN ({_placeholders(f.datasets)})"
        params += list(f.datasets)
    object_cond = "m.object_id IS NULL" if f.level == "image" else "m.object_id = o.object_id"
    if f.metric and (f.low is not None or f.high is not None):
        source = metric_source(reader, f.metric, f.level, f.datasets)
        sql += (
            f" AND EXISTS (SELECT 1 FROM {source} m WHERE m.dataset = {alias}.dataset"
            f" AND m.image_id = {alias}.image_id AND {object_cond} AND m.metric = ?"
        )
        params.append(f.metric)
        if f.low is not None:
            sql += " AND m.value >= ?"
            params.append(float(f.low))
        if f.high is not None:
            sql += " AND m.value <= ?"
            params.append(float(f.high))
        sql += ")"
    if f.issue:
        issue_sql, issue_params = _issue_condition(reader, f, alias)
        sql += f" AND {issue_sql}"
        params += issue_params
    if f.category_ids and f.level == "object":
        pairs = " OR ".join("(o.dataset = ? AND o.category_id = ?)" for _ in f.category_ids)
        sql += f" AND ({pairs})"
        for dataset, category_id in f.category_ids:
            params += [dataset, int(category_id)]
    if f.tag_keys is not None:
        registered.add("_tag_keys")
        if f.level == "image":
            sql += " AND EXISTS (SELECT 1 FROM _tag_keys t WHERE t.dataset = i.dataset AND t.image_id = i.image_id)"
        else:
            sql += (
                " AND EXISTS (SELECT 1 FROM _tag_keys t WHERE t.dataset = o.dataset AND t.image_id = o.image_id"
                " AND (t.object_id IS NULL OR t.object_id = o.object_id))"
            )
    return sql, params, registered


def _issue_condition(reader: ProjectReader, f: GalleryFilter, alias: str) -> tuple[str, list[Any]]:
    issue = catalogue.get(str(f.issue))
    if issue.level != f.level:
        raise ValueError(f"issue {issue.name!r} is shown in the {issue.level} gallery, not the {f.level} one")
    source = metric_source(reader, issue.metric, issue.level, f.datasets) if issue.metric else "metric_values"
    return catalogue.condition_sql(issue, alias, source)


def _run(
    reader: ProjectReader, sql: str, params: list[Any], f: GalleryFilter, registered: set[str]
) -> pd.DataFrame:
    tables = {}
    if "_tag_keys" in registered:
        keys = f.tag_keys if f.tag_keys is not None else pd.DataFrame()
        tables["_tag_keys"] = keys.reindex(columns=["dataset", "image_id", "object_id"]).astype(
            {"dataset": "string", "image_id": "Int64", "object_id": "Int64"}
        )
    return reader.df(sql, params, tables=tables)


def count_items(reader: ProjectReader, f: GalleryFilter) -> int:
    """How many images/objects pass the filter."""
    sql, params, registered = _base_sql(reader, f)
    frame = _run(reader, f"SELECT count(*) AS n FROM ({sql})", params, f, registered)
    return int(frame["n"].iloc[0])


def _ordered_keys_sql(
    reader: ProjectReader, f: GalleryFilter, sort_metric: str | None, descending: bool
) -> tuple[str, list[Any], set[str], str]:
    """(SELECT of the filtered keys with sort_value and duplicate_group, its params, tables to register,
    the ORDER BY of the gallery): the one ordering pages and the sample view's previous / next share."""
    base, params, registered = _base_sql(reader, f)
    direction = "DESC" if descending else "ASC"
    sort_params: list[Any] = []
    if sort_metric:
        object_match = "s.object_id IS NULL" if f.level == "image" else "s.object_id = k.object_id"
        sort_sql = (
            f"LEFT JOIN {metric_source(reader, sort_metric, f.level, f.datasets)} s"
            f" ON s.dataset = k.dataset AND s.image_id = k.image_id AND {object_match} AND s.metric = ?"
        )
        sort_params = [sort_metric]
        sort_value = "s.value"
    else:
        sort_sql, sort_value = "", "NULL::DOUBLE"
    issue = catalogue.BY_NAME.get(f.issue or "")
    duplicate_kind = issue.value if issue and issue.rule == "duplicates" else None
    group_params: list[Any] = []
    if duplicate_kind:
        group_sql = (
            "LEFT JOIN (SELECT dataset, image_id, min(group_id) AS group_id FROM duplicates WHERE kind = ?"
            " GROUP BY dataset, image_id) g ON g.dataset = k.dataset AND g.image_id = k.image_id"
        )
        group_params = [duplicate_kind]
        group_value = "g.group_id"
        order = "dataset, duplicate_group, sort_value {d} NULLS LAST, image_id, object_id"
    else:
        group_sql, group_value = "", "NULL::BIGINT"
        order = "sort_value {d} NULLS LAST, dataset, image_id, object_id"
    sql = f"""
        WITH k AS ({base})
        SELECT k.dataset, k.image_id, k.object_id, {sort_value} AS sort_value, {group_value} AS duplicate_group
        FROM k {sort_sql} {group_sql}
    """
    return sql, params + sort_params + group_params, registered, order.format(d=direction)


def page_items(
    reader: ProjectReader,
    f: GalleryFilter,
    sort_metric: str | None = None,
    descending: bool = False,
    page: int = 0,
    page_size: int = 24,
) -> pd.DataFrame:
    """One page of items with what a card needs, sorted by a metric (nulls last), then by ids.

    ``sort_metric`` None keeps id order (``sort_value`` is then NULL); otherwise the metric at the
    filter's level, ``descending`` largest first. ``page`` is 0-based, ``page_size`` items per page;
    a page past the end is an empty frame. Duplicate issues order by group first (``duplicate_group``:
    the image's group id, the smallest when it is in several; NULL for other filters) so a group's
    images stand together.

    Columns: dataset, image_id, object_id, file_name, path, status, error, width, height,
    orientation_applied, exif_orientation, content_hash, sort_value, duplicate_group; objects also
    category_id, category, bbox_x/y/w/h, segmentation.
    """
    keys, params, registered, order = _ordered_keys_sql(reader, f, sort_metric, descending)
    object_cols, object_join_sql = "", ""
    if f.level == "object":
        object_cols = ", o.category_id, c.name AS category, o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.segmentation, o.iscrowd"
        object_join_sql = (
            "JOIN objects o ON o.dataset = p.dataset AND o.image_id = p.image_id AND o.object_id = p.object_id "
            "LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id"
        )
    # Sort and cut the page on keys only, then fetch the wide columns for those rows alone.
    sql = f"""
        WITH p AS (SELECT * FROM ({keys}) ORDER BY {order} LIMIT ? OFFSET ?)
        SELECT p.dataset, p.image_id, p.object_id, i.file_name, i.path, i.status, i.error, i.width, i.height,
               i.orientation_applied, i.exif_orientation, i.content_hash, p.sort_value, p.duplicate_group{object_cols}
        FROM p JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
        {object_join_sql}
        ORDER BY {order}
    """
    all_params = params + [int(page_size), int(page) * int(page_size)]
    return _run(reader, sql, all_params, f, registered)


def neighbours(
    reader: ProjectReader,
    f: GalleryFilter,
    sort_metric: str | None,
    descending: bool,
    key: tuple[str, int, int | None],
) -> dict[str, Any] | None:
    """Where an item stands in the gallery's order: {position (1-based), total, previous, next}, the
    neighbours as (dataset, image_id, object_id) or None at the ends; None when the item is not in it."""
    keys, params, registered, order = _ordered_keys_sql(reader, f, sort_metric, descending)
    dataset, image_id, object_id = key
    object_cond = "object_id IS NULL" if object_id is None or f.level == "image" else "object_id = ?"
    sql = f"""
        WITH o AS (
            SELECT dataset, image_id, object_id, row_number() OVER (ORDER BY {order}) AS position,
                   count(*) OVER () AS total
            FROM ({keys})
        ),
        me AS (SELECT position, total FROM o WHERE dataset = ? AND image_id = ? AND {object_cond})
        SELECT o.dataset, o.image_id, o.object_id, o.position, me.position AS mine, me.total
        FROM o, me WHERE o.position BETWEEN me.position - 1 AND me.position + 1
        ORDER BY o.position
    """
    extra = [dataset, int(image_id)] + ([] if object_cond.endswith("NULL") else [int(object_id)])
    rows = _run(reader, sql, params + extra, f, registered)
    if rows.empty:
        return None
    mine = int(rows["mine"].iloc[0])

    def at(position: int) -> tuple[str, int, int | None] | None:
        hit = rows[rows["position"] == position]
        if hit.empty:
            return None
        r = hit.iloc[0]
        return str(r["dataset"]), int(r["image_id"]), None if pd.isna(r["object_id"]) else int(r["object_id"])

    return {
        "position": mine,
        "total": int(rows["total"].iloc[0]),
        "previous": at(mine - 1),
        "next": at(mine + 1),
    }


def page_count(total: int, page_size: int) -> int:
    """Pages needed for ``total`` items, at least 1 (an empty gallery still has its first page)."""
    return max(1, math.ceil(total / max(1, page_size)))


# ----- charts ----------------------------------------------------------------------------------------


def metric_level_names(reader: ProjectReader, level: Level) -> list[str]:
    """Metrics stored at this level (image: object_id NULL), whatever their origin."""
    return stored_metric_names(reader, level)


def metric_bounds(
    reader: ProjectReader, metric: str, level: Level, datasets: list[str]
) -> dict[str, float | int]:
    """count, min, max, q1, q3 and the IQR fences of one metric over the chosen datasets.

    Values in the metric's unit; non-finite values are left out. With no value the count is 0 and
    every other entry NaN. The fences are :func:`metrics.outliers.fences` of these quartiles
    (moderate_low/high at ``MODERATE_IQR``, severe_low/high at ``SEVERE_IQR``)."""
    cond = "object_id IS NULL" if level == "image" else "object_id IS NOT NULL"
    sql = f"""
        SELECT count(value) AS count, min(value) AS min, max(value) AS max,
               quantile_cont(value, 0.25) AS q1, quantile_cont(value, 0.75) AS q3
        FROM {metric_source(reader, metric, level, datasets)}
        WHERE metric = ? AND {cond} AND isfinite(value) AND dataset IN ({_placeholders(datasets)})
    """
    row = reader.df(sql, [metric, *datasets]).iloc[0].to_dict()
    out: dict[str, float | int] = {"count": int(row["count"] or 0)}
    for key in ("min", "max", "q1", "q3"):
        value = row[key]
        out[key] = float(value) if value is not None and not pd.isna(value) else float("nan")
    out.update(fences(out["q1"], out["q3"]))
    return out


def metric_histogram(
    reader: ProjectReader, metric: str, level: Level, datasets: list[str], bins: int = 50
) -> pd.DataFrame:
    """Per-dataset counts in equal-width bins over the metric's range: dataset, bin_low, bin_high, count.

    Binned in SQL so the browser gets ``bins × datasets`` rows, not one per image or object.
    """
    bounds = metric_bounds(reader, metric, level, datasets)
    if bounds["count"] == 0:
        return pd.DataFrame(columns=["dataset", "bin_low", "bin_high", "count"])
    low, high = float(bounds["min"]), float(bounds["max"])
    width = (high - low) / bins if high > low else 1.0
    cond = "object_id IS NULL" if level == "image" else "object_id IS NOT NULL"
    sql = f"""
        SELECT dataset, least(CAST(floor((value - ?) / ?) AS BIGINT), ?) AS bin, count(*) AS count
        FROM {metric_source(reader, metric, level, datasets)}
        WHERE metric = ? AND {cond} AND isfinite(value) AND dataset IN ({_placeholders(datasets)})
        GROUP BY dataset, bin ORDER BY dataset, bin
    """
    frame = reader.df(sql, [low, width, bins - 1 if high > low else 0, metric, *datasets])
    frame["bin_low"] = low + frame["bin"] * width
    frame["bin_high"] = frame["bin_low"] + width
    return frame[["dataset", "bin_low", "bin_high", "count"]]


# ----- details -----------------------------------------------------------------------------------------


def image_record(reader: ProjectReader, dataset: str, image_id: int) -> dict[str, Any] | None:
    frame = reader.df("SELECT * FROM images WHERE dataset = ? AND image_id = ?", [dataset, int(image_id)])
    return None if frame.empty else frame.iloc[0].to_dict()


def image_objects(reader: ProjectReader, keys: list[tuple[str, int]]) -> pd.DataFrame:
    """Objects (with category names) of the given images: what the cards draw."""
    columns = [
        "dataset",
        "image_id",
        "object_id",
        "category_id",
        "category",
        "bbox_x",
        "bbox_y",
        "bbox_w",
        "bbox_h",
        "segmentation",
        "iscrowd",
        "colour_id",
    ]
    if not keys:
        return pd.DataFrame(columns=columns)
    wanted = pd.DataFrame(
        {"dataset": [str(k[0]) for k in keys], "image_id": [int(k[1]) for k in keys]}
    ).astype({"dataset": "string", "image_id": "int64"})
    sql = f"""
        SELECT o.dataset, o.image_id, o.object_id, o.category_id, c.name AS category,
               o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.segmentation, o.iscrowd, cc.colour_id
        FROM objects o SEMI JOIN _wanted w ON w.dataset = o.dataset AND w.image_id = o.image_id
        LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
        LEFT JOIN ({COLOUR_IDS_SQL}) cc ON cc.name = c.name
        ORDER BY o.dataset, o.image_id, o.object_id
    """
    return reader.df(sql, tables={"_wanted": wanted})[columns]


# One colour number per class name over the whole project (sorted names): classes shown together never
# share a colour, and a class keeps its colour on every page and in every dataset that has it.
COLOUR_IDS_SQL = "SELECT name, CAST(row_number() OVER (ORDER BY name) - 1 AS BIGINT) AS colour_id FROM (SELECT DISTINCT name FROM categories)"


def colour_ids(reader: ProjectReader) -> dict[str, int]:
    """Class name → colour number (see ``COLOUR_IDS_SQL``), for legends and frames drawn elsewhere."""
    frame = reader.df(COLOUR_IDS_SQL)
    return {str(n): int(i) for n, i in zip(frame["name"], frame["colour_id"], strict=True)}


def with_colour_ids(reader: ProjectReader, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with a ``category`` column: objects, predictions, crops) plus its ``colour_id``."""
    ids = colour_ids(reader)
    return frame.assign(colour_id=frame["category"].map(lambda name: ids.get(str(name))).astype("Int64"))


def item_metrics(
    reader: ProjectReader, dataset: str, image_id: int, object_id: int | None = None
) -> pd.DataFrame:
    """Every metric value of one image (object_id None) or one object: metric, value, version."""
    if object_id is None:
        sql = (
            "SELECT metric, value, version FROM metric_values WHERE dataset = ? AND image_id = ?"
            " AND object_id IS NULL ORDER BY metric"
        )
        return reader.df(sql, [dataset, int(image_id)])
    sql = (
        "SELECT metric, value, version FROM metric_values WHERE dataset = ? AND image_id = ? AND object_id = ?"
        " ORDER BY metric"
    )
    return reader.df(sql, [dataset, int(image_id), int(object_id)])


def image_object_metrics(reader: ProjectReader, dataset: str, image_id: int) -> pd.DataFrame:
    """The objects of one image, one row each, one column per object metric (detail view table)."""
    names = reader.df(
        "SELECT DISTINCT metric FROM metric_values WHERE dataset = ? AND image_id = ? AND object_id IS NOT NULL"
        " ORDER BY 1",
        [dataset, int(image_id)],
    )["metric"].tolist()
    pivot = "".join(
        f", max(m.value) FILTER (WHERE m.metric = '{name}') AS \"{name}\""
        for name in names
        if name.isidentifier()
    )
    sql = f"""
        SELECT o.object_id, c.name AS category, round(o.bbox_x, 1) AS x, round(o.bbox_y, 1) AS y,
               round(o.bbox_w, 1) AS w, round(o.bbox_h, 1) AS h, o.seg_type{pivot}
        FROM objects o
        LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
        LEFT JOIN metric_values m ON m.dataset = o.dataset AND m.image_id = o.image_id AND m.object_id = o.object_id
        WHERE o.dataset = ? AND o.image_id = ?
        GROUP BY o.object_id, c.name, o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.seg_type
        ORDER BY o.object_id
    """
    return reader.df(sql, [dataset, int(image_id)])


def duplicate_partners(reader: ProjectReader, dataset: str, image_id: int) -> pd.DataFrame:
    """Other images in the same duplicate groups: kind, group_id, image_id, file_name."""
    sql = """
        SELECT d2.kind, d2.group_id, d2.image_id, i.file_name
        FROM duplicates d1
        JOIN duplicates d2 ON d2.dataset = d1.dataset AND d2.kind = d1.kind AND d2.group_id = d1.group_id
        JOIN images i ON i.dataset = d2.dataset AND i.image_id = d2.image_id
        WHERE d1.dataset = ? AND d1.image_id = ? AND d2.image_id <> d1.image_id
        ORDER BY d2.kind, d2.group_id, d2.image_id
    """
    return reader.df(sql, [dataset, int(image_id)])


# ----- label statistics ---------------------------------------------------------------------------------


def class_distribution(reader: ProjectReader, datasets: list[str]) -> pd.DataFrame:
    """Objects per class and dataset (classes with no objects included): dataset, category_id, category, objects."""
    sql = f"""
        SELECT c.dataset, c.category_id, c.name AS category, count(o.object_id) AS objects
        FROM categories c
        LEFT JOIN objects o ON o.dataset = c.dataset AND o.category_id = c.category_id
        WHERE c.dataset IN ({_placeholders(datasets)})
        GROUP BY c.dataset, c.category_id, c.name
        ORDER BY objects DESC, c.dataset, c.category_id
    """
    return reader.df(sql, list(datasets))


def imbalance_summary(distribution: pd.DataFrame) -> dict[str, Any]:
    """Per dataset: classes used, classes under 10 objects, largest/smallest class ratio (used classes)."""
    out: dict[str, Any] = {}
    for dataset, group in distribution.groupby("dataset"):
        used = group[group["objects"] > 0]
        largest = int(used["objects"].max()) if len(used) else 0
        smallest = int(used["objects"].min()) if len(used) else 0
        out[str(dataset)] = {
            "classes": int(len(group)),
            "classes_used": int(len(used)),
            "classes_under_10": int((used["objects"] < SMALL_CLASS_OBJECTS).sum()),
            "largest_class": str(used.iloc[used["objects"].argmax()]["category"]) if len(used) else "",
            "smallest_class": str(used.iloc[used["objects"].argmin()]["category"]) if len(used) else "",
            "largest_smallest_ratio": float(largest / smallest) if smallest else float("nan"),
        }
    return out


def dataset_metric_means(reader: ProjectReader, datasets: list[str], level: Level = "object") -> pd.DataFrame:
    """Mean of every metric at this level per dataset (wide: one row per dataset, one column per metric).

    With several annotators' datasets this is the annotator statistics table.
    """
    cond = "object_id IS NULL" if level == "image" else "object_id IS NOT NULL"
    sql = f"""
        SELECT dataset, metric, avg(value) AS mean
        FROM metric_values WHERE {cond} AND isfinite(value) AND dataset IN ({_placeholders(datasets)})
        GROUP BY dataset, metric
    """
    long = reader.df(sql, list(datasets))
    if long.empty:
        return pd.DataFrame({"dataset": list(datasets)})
    wide = long.pivot(index="dataset", columns="metric", values="mean").reset_index()
    wide.columns.name = None
    return wide


def filter_keys(reader: ProjectReader, f: GalleryFilter, limit: int | None = None) -> pd.DataFrame:
    """dataset, image_id, object_id of every item passing the filter (keys only: 'tag all in filter')."""
    sql, params, registered = _base_sql(reader, f)
    sql = f"SELECT * FROM ({sql}) ORDER BY dataset, image_id, object_id"
    if limit is not None:
        sql += " LIMIT ?"
        params = [*params, int(limit)]
    return _run(reader, sql, params, f, registered)
