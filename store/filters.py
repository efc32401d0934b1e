"""Filters over a project: which images and objects match, as SQL run by DuckDB over the store.

A :class:`Filter` combines datasets, classes, metric ranges, tags, IQR-outlier flags, an issue and
an optional ``--where`` expression. Its meaning:

* an **object** matches when its image passes the image conditions and the object passes the
  object conditions (class, object-metric ranges/outliers, object issues, object tags);
* an **image** matches when it passes the image conditions and, if any object condition is set,
  has at least one matching object;
* a **tag** matches an image tagged itself or through one of its objects, and an object tagged
  itself or through its image;
* **outliers** use Tukey fences over the filter's datasets pooled (as the Summary page and the
  report): ``any`` = beyond 1.5×IQR, ``moderate`` = between 1.5 and 2.5×IQR, ``severe`` = beyond 2.5×IQR.

The ``--where`` expression (CLI ``export coco --where`` and the page's expert box) is a SQL boolean
expression evaluated on one row per object (plus one row per image without objects, its object
columns NULL). Columns available (see :func:`where_columns`):

* ``dataset, image_id, object_id, file_name, category, bbox_x, bbox_y, bbox_w, bbox_h, iscrowd``;
* every object metric by name (``object_area < 100``);
* every image metric by name (``brightness < 0.3``) and also as ``image_<name>`` (``image_area``),
  the prefixed form being the one to use if an object metric ever has the same name.

Only columns, literals, comparisons, AND/OR/NOT, + - * / %, IN (list), BETWEEN, LIKE/ILIKE and
IS [NOT] NULL are accepted: the expression is parsed by DuckDB and every node of its syntax tree
is checked against that allow-list, so no function call (``read_csv``...), subquery, cast or second
statement can reach the database.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from metrics.outliers import MODERATE_IQR, SEVERE_IQR
from store import issue_catalogue as catalogue
from store.errors import InputError
from store.queries import ProjectReader

OUTLIER_LEVELS = ("any", "moderate", "severe")
BASE_WHERE_COLUMNS: dict[str, str] = {
    "dataset": "VARCHAR", "image_id": "BIGINT", "object_id": "BIGINT", "file_name": "VARCHAR",
    "category": "VARCHAR", "bbox_x": "DOUBLE", "bbox_y": "DOUBLE", "bbox_w": "DOUBLE", "bbox_h": "DOUBLE",
    "iscrowd": "BIGINT",
}  # fmt: skip
_ALLOWED_FUNCTIONS = {"+", "-", "*", "/", "%", "//", "~~", "!~~", "~~*", "!~~*"}  # arithmetic and (I)LIKE
_ALLOWED_OPERATORS = {
    "OPERATOR_NOT", "COMPARE_IN", "COMPARE_NOT_IN", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL",
}  # fmt: skip
_ALLOWED_CLASSES = {"CONJUNCTION", "COMPARISON", "BETWEEN", "CONSTANT", "COLUMN_REF", "OPERATOR", "FUNCTION"}


def sql_literal(value: Any) -> str:
    """A SQL literal for a string or finite number (filters are built from values, never from SQL)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    number = float(value)
    if not math.isfinite(number):
        raise InputError("filter", f"{value!r} is not a finite number")
    return repr(number)


def inclusive_bounds(
    lo: float | None,
    hi: float | None,
    data_lo: float | None,
    data_hi: float | None,
    digits: int = 6,
) -> tuple[float | None, float | None]:
    """A range as typed on a page, with an end that is the data's extreme *as shown* left open.

    Pages show metric values to ``digits`` significant digits; a bound equal to the data's minimum
    or maximum as shown (0.362011 for 0.36201080…) would otherwise drop the extreme item itself.
    """

    def shown_equal(a: float, b: float) -> bool:
        return f"{a:.{digits}g}" == f"{b:.{digits}g}"

    if lo is not None and data_lo is not None and (lo <= data_lo or shown_equal(lo, data_lo)):
        lo = None
    if hi is not None and data_hi is not None and (hi >= data_hi or shown_equal(hi, data_hi)):
        hi = None
    return lo, hi


def _in(column: str, values: list[Any]) -> str:
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


@dataclass
class Filter:
    """What the user wants to see or export. Empty fields mean "no condition"."""

    datasets: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    outliers: dict[str, str] = field(default_factory=dict)  # metric → 'any' | 'moderate' | 'severe'
    issue: str | None = None
    where: str | None = None

    # ----- URL round trip -------------------------------------------------------------------
    def to_query(self) -> dict[str, list[str] | str | None]:
        """Query parameters (``f_*``) that reproduce this filter in a link."""

        def bound(v: float | None) -> str:
            return "" if v is None else repr(float(v))

        return {
            "f_ds": list(self.datasets),
            "f_cls": list(self.classes),
            "f_range": [f"{m}:{bound(lo)}:{bound(hi)}" for m, (lo, hi) in self.ranges.items()],
            "f_tag": list(self.tags),
            "f_out": [f"{m}:{level}" for m, level in self.outliers.items()],
            "f_issue": self.issue,
            "f_where": self.where,
        }

    @classmethod
    def from_query(cls, params: Mapping[str, Any]) -> Filter:
        """Inverse of :meth:`to_query`; malformed entries are dropped (a link must never crash a page)."""

        def many(key: str) -> list[str]:
            value = params.get(key)
            if value is None:
                return []
            return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

        def one(key: str) -> str | None:
            values = many(key)
            return values[0] if values and values[0] else None

        ranges: dict[str, tuple[float | None, float | None]] = {}
        for text in many("f_range"):
            parts = text.split(":")
            if len(parts) != 3:
                continue
            try:
                lo = float(parts[1]) if parts[1] else None
                hi = float(parts[2]) if parts[2] else None
            except ValueError:
                continue
            ranges[parts[0]] = (lo, hi)
        outliers = {}
        for text in many("f_out"):
            metric, _, level = text.partition(":")
            if level in OUTLIER_LEVELS:
                outliers[metric] = level
        return cls(
            datasets=many("f_ds"), classes=many("f_cls"), ranges=ranges, tags=many("f_tag"),
            outliers=outliers, issue=one("f_issue"), where=one("f_where"),
        )  # fmt: skip


# ----- metric levels -------------------------------------------------------------------------------


def metric_levels(reader: ProjectReader) -> dict[str, str]:
    """metric name → 'image' | 'object', read from the metric file names (no data scan)."""
    levels: dict[str, str] = {}
    for path in sorted(reader.project.datasets_dir.glob("*/metrics/*.parquet")):
        level, _, name = path.stem.partition("__")
        if level in ("image", "object") and name:
            levels.setdefault(name, level)
    return levels


# ----- the --where expression ------------------------------------------------------------------------


def where_columns(reader: ProjectReader) -> dict[str, tuple[str, str | None, str | None]]:
    """Column name (lower case) usable in ``--where`` → (SQL type, metric level or None, metric name)."""
    columns: dict[str, tuple[str, str | None, str | None]] = {
        name: (sql_type, None, None) for name, sql_type in BASE_WHERE_COLUMNS.items()
    }
    levels = metric_levels(reader)
    for name, level in levels.items():
        if level == "image":
            columns.setdefault(f"image_{name}".lower(), ("DOUBLE", "image", name))
    for name, level in sorted(levels.items(), key=lambda item: item[1] != "object"):  # object names win
        columns.setdefault(name.lower(), ("DOUBLE", level, name))
    return columns


def _fail(message: str) -> InputError:
    return InputError("--where", message)


def _check_node(node: Any, columns: Mapping[str, Any], used: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _check_node(item, columns, used)
        return
    if not isinstance(node, dict):
        return
    klass = node.get("class")
    if klass is not None:
        kind = node.get("type", "")
        if klass not in _ALLOWED_CLASSES:
            raise _fail(
                f"{klass.lower().replace('_', ' ')} is not allowed (only columns, literals and operators)"
            )
        if klass == "OPERATOR" and kind not in _ALLOWED_OPERATORS:
            raise _fail(f"operator {kind} is not allowed")
        if klass == "FUNCTION":
            name = node.get("function_name", "")
            if name.lower() == "has_tag":
                raise _fail("has_tag() takes one quoted tag name, e.g. has_tag('blurry')")
            if name not in _ALLOWED_FUNCTIONS or node.get("filter") or node.get("distinct"):
                raise _fail(
                    f"function {name}() is not allowed (only + - * / %, LIKE, ILIKE and has_tag('…'))"
                )
        if klass == "COLUMN_REF":
            names = node.get("column_names", [])
            if len(names) != 1 or names[0].lower() not in columns:
                known = ", ".join(sorted(c for c in columns if not c.startswith("__has_tag_")))
                raise _fail(f"unknown column {'.'.join(names)!r}; use one of: {known} (and has_tag('TAG'))")
            used.add(names[0].lower())
    for key, value in node.items():
        if key not in ("type", "class"):
            _check_node(value, columns, used)


HAS_TAG_COLUMN = "__has_tag_{}"  # what has_tag('x') becomes in the row query (one boolean column per tag)


def _rewrite_has_tag(expression: str) -> tuple[str, dict[str, str]]:
    """``has_tag('x')`` calls (outside quotes) → ``"__has_tag_N"`` column references; returns the new
    expression and {column: tag}. A call that is not one quoted tag name is left for the checker."""
    out: list[str] = []
    tags: dict[str, str] = {}
    i, n = 0, len(expression)
    while i < n:
        char = expression[i]
        if char in "'\"":  # copy a quoted literal or identifier whole ('' / "" escape the quote)
            j = i + 1
            while j < n:
                if expression[j] == char:
                    if j + 1 < n and expression[j + 1] == char:
                        j += 2
                        continue
                    break
                j += 1
            out.append(expression[i : j + 1])
            i = j + 1
            continue
        if (char.isalpha() or char == "_") and (
            i == 0 or not (expression[i - 1].isalnum() or expression[i - 1] in "_$")
        ):
            j = i
            while j < n and (expression[j].isalnum() or expression[j] in "_$"):
                j += 1
            word = expression[i:j]
            call = _HAS_TAG_CALL.match(expression, j) if word.lower() == "has_tag" else None
            if call:
                tag = call.group(1).replace("''", "'")
                column = next((c for c, t in tags.items() if t == tag), None) or HAS_TAG_COLUMN.format(
                    len(tags)
                )
                tags[column] = tag
                out.append(f'"{column}"')
                i = call.end()
            else:
                out.append(word)
                i = j
            continue
        out.append(char)
        i += 1
    return "".join(out), tags


_HAS_TAG_CALL = re.compile(r"\s*\(\s*'((?:[^']|'')*)'\s*\)")


def validate_where(reader: ProjectReader, expression: str) -> tuple[str, set[str]]:
    """Check a ``--where`` expression; return it with the (lower-case) columns it uses.

    Raises a one-line InputError naming ``--where`` on anything outside the allow-list.
    """
    expression = (expression or "").strip()
    if not expression:
        raise _fail("empty expression")
    if ";" in expression:
        raise _fail("';' is not allowed (one expression, no statements)")
    if "--" in expression or "/*" in expression:
        raise _fail("comments are not allowed")
    expression, tag_columns = _rewrite_has_tag(expression)
    columns = {**where_columns(reader), **{c: ("BOOLEAN", "tag", t) for c, t in tag_columns.items()}}
    con = duckdb.connect(":memory:")
    try:
        text = con.execute(
            "SELECT json_serialize_sql(?)", [f"SELECT * FROM t WHERE {expression}"]
        ).fetchone()[0]
        tree = json.loads(text)
        if tree.get("error"):
            raise _fail(f"cannot parse: {tree.get('error_message', 'syntax error')}")
        statements = tree.get("statements", [])
        node = statements[0].get("node", {}) if len(statements) == 1 else {}
        if node.get("type") != "SELECT_NODE" or node.get("where_clause") is None:
            raise _fail("expected one boolean expression")
        if node.get("from_table", {}).get("table_name") != "t" or len(node.get("select_list", [])) != 1:
            raise _fail("expected one boolean expression")
        used: set[str] = set()
        _check_node(node["where_clause"], columns, used)
        typed = ", ".join(f'NULL::{columns[c][0]} AS "{c}"' for c in sorted(columns))
        con.execute(f"SELECT count(*) FROM (SELECT {typed} LIMIT 0) WHERE ({expression})").fetchall()
    except duckdb.Error as exc:
        message = str(exc).split("\nLINE ")[0]  # drop DuckDB's echo of the internal query
        raise _fail(" ".join(message.split())[:300]) from exc
    finally:
        con.close()
    return expression, used


def _has_tag_sql(reader: ProjectReader, tag: str) -> str:
    """SQL true on a row (aliases i: image, o: object or NULL) when the image carries ``tag``, or for an
    object row the object does. The tag's keys are inlined (the query runs without registered tables)."""
    from store.tags import tagged

    keys = tagged(reader.project.root, tag)
    if len(keys):
        values = ", ".join(
            f"({sql_literal(str(r.dataset))}, {int(r.image_id)}, "
            f"{'NULL' if pd.isna(r.object_id) else int(r.object_id)})"
            for r in keys.itertuples(index=False)
        )
        source = f"(VALUES {values}) AS t(dataset, image_id, object_id)"
    else:
        source = "(SELECT NULL::VARCHAR AS dataset, NULL::BIGINT AS image_id, NULL::BIGINT AS object_id WHERE false) t"
    return (
        f"EXISTS (SELECT 1 FROM {source} WHERE t.dataset = i.dataset AND t.image_id = i.image_id"
        " AND (t.object_id IS NULL OR t.object_id = o.object_id))"
    )


def where_rows_sql(reader: ProjectReader, expression: str, datasets: list[str] | None) -> str:
    """SQL of (dataset, image_id, object_id) rows where the validated expression holds."""
    _, tag_columns = _rewrite_has_tag(expression)
    expression, used = validate_where(reader, expression)
    columns = where_columns(reader)
    joins, selects = [], []
    for column, tag in tag_columns.items():
        selects.append(f'{_has_tag_sql(reader, tag)} AS "{column}"')
    for index, column in enumerate(sorted(used)):
        if column in tag_columns:
            continue
        _, level, metric = columns[column]
        if level is None:
            continue
        alias = f"w{index}"
        if level == "image":
            joins.append(
                f"LEFT JOIN (SELECT dataset, image_id, value FROM metric_values WHERE metric = {sql_literal(metric)}"
                f" AND object_id IS NULL) {alias} ON {alias}.dataset = i.dataset AND {alias}.image_id = i.image_id"
            )
        else:
            joins.append(
                f"LEFT JOIN (SELECT dataset, image_id, object_id, value FROM metric_values WHERE metric ="
                f" {sql_literal(metric)} AND object_id IS NOT NULL) {alias} ON {alias}.dataset = o.dataset"
                f" AND {alias}.image_id = o.image_id AND {alias}.object_id = o.object_id"
            )
        selects.append(f'{alias}.value AS "{column}"')
    dataset_cond = _in("i.dataset", datasets) if datasets else "true"
    extra = (", " + ", ".join(selects)) if selects else ""
    return f"""
        SELECT dataset, image_id, object_id FROM (
            SELECT i.dataset, i.image_id, o.object_id, i.file_name, c.name AS category,
                   o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.iscrowd{extra}
            FROM images i
            LEFT JOIN objects o ON o.dataset = i.dataset AND o.image_id = i.image_id
            LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
            {" ".join(joins)}
            WHERE {dataset_cond}
        ) WHERE ({expression})
    """


def cli_where(reader: ProjectReader, flt: Filter) -> tuple[str | None, list[str]]:
    """The filter's classes, ranges, tags and expression as one ``--where`` expression (what
    ``cocolens export coco`` takes), and the conditions that have no ``--where`` form (outliers, issue).
    The datasets go to ``--dataset``."""
    columns = where_columns(reader)
    levels = metric_levels(reader)
    parts: list[str] = []
    if flt.classes:
        parts.append(_in("category", list(flt.classes)))
    for metric, (lo, hi) in flt.ranges.items():
        level = levels.get(metric)
        bare = columns.get(metric.lower())
        name = metric if bare is not None and bare[1:] == (level, metric) else f"image_{metric}"
        conditions = [f"{name} >= {sql_literal(lo)}"] if lo is not None else []
        if hi is not None:
            conditions.append(f"{name} <= {sql_literal(hi)}")
        parts.append(" AND ".join(conditions) or f"{name} IS NOT NULL")
    if flt.tags:
        tags = " OR ".join(f"has_tag({sql_literal(tag)})" for tag in flt.tags)
        parts.append(f"({tags})" if len(flt.tags) > 1 else tags)
    if flt.where:
        parts.append(f"({flt.where})")
    missing = (["outliers"] if flt.outliers else []) + (["issue"] if flt.issue else [])
    return (" AND ".join(parts) or None), missing


# ----- the filter as SQL ------------------------------------------------------------------------------


def _fences(
    reader: ProjectReader, metric: str, level: str, datasets: list[str]
) -> tuple[float, float] | None:
    cond = f" AND {_in('dataset', datasets)}" if datasets else ""
    null = "NULL" if level == "image" else "NOT NULL"
    row = reader.df(
        "SELECT quantile_cont(value, 0.25) AS q1, quantile_cont(value, 0.75) AS q3 FROM metric_values "
        f"WHERE metric = {sql_literal(metric)} AND object_id IS {null} AND value IS NOT NULL{cond}"
    )
    if not len(row) or pd.isna(row["q1"][0]):
        return None
    return float(row["q1"][0]), float(row["q3"][0])


def _outlier_cond(q1: float, q3: float, level: str) -> str:
    iqr = q3 - q1
    beyond = lambda k: f"(value < {sql_literal(q1 - k * iqr)} OR value > {sql_literal(q3 + k * iqr)})"  # noqa: E731
    if level == "severe":
        return beyond(SEVERE_IQR)
    if level == "moderate":
        return f"{beyond(MODERATE_IQR)} AND NOT {beyond(SEVERE_IQR)}"
    return beyond(MODERATE_IQR)


def _metric_exists(alias: str, level: str, metric: str, value_cond: str) -> str:
    key = (
        f"m.image_id = {alias}.image_id AND m.object_id IS NULL"
        if level == "image"
        else f"m.image_id = {alias}.image_id AND m.object_id = {alias}.object_id"
    )
    return (
        f"EXISTS (SELECT 1 FROM metric_values m WHERE m.dataset = {alias}.dataset AND {key}"
        f" AND m.metric = {sql_literal(metric)} AND {value_cond})"
    )


def _issue_cond(name: str) -> tuple[str, str]:
    """(level, condition on alias i (image) or o (object)) for an issue of the catalogue, its values
    inlined as literals (this SQL is composed as text)."""
    issue = catalogue.BY_NAME.get(name)
    if issue is None:
        raise InputError("filter", f"unknown issue {name!r}")
    sql, params = catalogue.condition_sql(issue, "i" if issue.level == "image" else "o")
    pieces = sql.split("?")  # the catalogue's SQL has no '?' but its placeholders
    inlined = pieces[0] + "".join(sql_literal(p) + rest for p, rest in zip(params, pieces[1:], strict=True))
    return issue.level, inlined


@dataclass
class FilterSQL:
    """SQL selecting the matching (dataset, image_id) and (dataset, image_id, object_id)."""

    images: str
    objects: str
    tags: pd.DataFrame | None  # registered as _tagged when the SQL needs it


def build_sql(reader: ProjectReader, flt: Filter) -> FilterSQL:
    """Translate a filter into SQL over the reader's views (values inlined as escaped literals)."""
    datasets = [d for d in flt.datasets if d in reader.datasets()] if flt.datasets else reader.datasets()
    if not datasets:
        datasets = ["\x00none"]  # matches nothing, keeps the SQL valid
    levels = metric_levels(reader)
    image_conds = [_in("i.dataset", datasets)]
    object_conds: list[str] = []

    def add(level: str, cond: str) -> None:
        (image_conds if level == "image" else object_conds).append(cond)

    for metric, (lo, hi) in flt.ranges.items():
        level = levels.get(metric)
        if level is None:
            raise InputError("filter", f"unknown metric {metric!r}")
        parts = ["m.value IS NOT NULL"]
        if lo is not None:
            parts.append(f"m.value >= {sql_literal(lo)}")
        if hi is not None:
            parts.append(f"m.value <= {sql_literal(hi)}")
        add(level, _metric_exists("i" if level == "image" else "o", level, metric, " AND ".join(parts)))
    for metric, outlier in flt.outliers.items():
        level = levels.get(metric)
        if level is None or outlier not in OUTLIER_LEVELS:
            raise InputError("filter", f"unknown metric or outlier level {metric!r}: {outlier!r}")
        fences = _fences(reader, metric, level, datasets)
        if fences is None:
            add(level, "false")
            continue
        cond = _outlier_cond(*fences, outlier).replace("value", "m.value")
        add(level, _metric_exists("i" if level == "image" else "o", level, metric, cond))
    if flt.classes:
        object_conds.append(_in("c.name", list(flt.classes)))
    if flt.issue:
        add(*_issue_cond(flt.issue))
    tags_frame = None
    if flt.tags:
        from store.tags import tagged

        tags_frame = tagged(reader.project.root, None)
        tags_frame = tags_frame[tags_frame["tag"].isin(flt.tags)][["dataset", "image_id", "object_id"]]
    where_rows = where_rows_sql(reader, flt.where, datasets) if flt.where else None

    image_sql = f"SELECT i.dataset, i.image_id FROM images i WHERE {' AND '.join(image_conds)}"
    object_filter = " AND ".join(object_conds) if object_conds else "true"
    if tags_frame is not None:
        object_filter += (
            " AND (EXISTS (SELECT 1 FROM _tagged t WHERE t.dataset = o.dataset AND t.image_id = o.image_id"
            " AND (t.object_id IS NULL OR t.object_id = o.object_id)))"
        )
    object_sql = f"""
        SELECT o.dataset, o.image_id, o.object_id
        FROM objects o
        JOIN ({image_sql}) i ON i.dataset = o.dataset AND i.image_id = o.image_id
        LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
        WHERE {object_filter}
    """
    if where_rows:
        object_sql += f" AND (o.dataset, o.image_id, o.object_id) IN (SELECT (dataset, image_id, object_id) FROM ({where_rows}))"
    image_filter = []
    if object_conds:
        image_filter.append(f"(i.dataset, i.image_id) IN (SELECT (dataset, image_id) FROM ({object_sql}))")
    if tags_frame is not None:
        image_filter.append("(i.dataset, i.image_id) IN (SELECT (dataset, image_id) FROM _tagged)")
    if where_rows:
        image_filter.append(f"(i.dataset, i.image_id) IN (SELECT (dataset, image_id) FROM ({where_rows}))")
    final_images = f"SELECT i.dataset, i.image_id FROM ({image_sql}) i" + (
        " WHERE " + " AND ".join(image_filter) if image_filter else ""
    )
    return FilterSQL(images=final_images, objects=object_sql, tags=tags_frame)


def _run(reader: ProjectReader, built: FilterSQL, sql: str) -> pd.DataFrame:
    return reader.df(sql, tables=None if built.tags is None else {"_tagged": built.tags})


def match_counts(reader: ProjectReader, flt: Filter) -> dict[str, int]:
    """How many images and objects the filter matches (one query, for live counts on a page):
    ``{"images": n, "objects": m}``. Raises :class:`InputError` (one line for the user) on an unknown
    metric, outlier level or issue, or a ``--where`` outside the allowed grammar."""
    built = build_sql(reader, flt)
    frame = _run(
        reader,
        built,
        f"SELECT (SELECT count(*) FROM ({built.images})) AS images, (SELECT count(*) FROM ({built.objects})) AS objects",
    )
    return {"images": int(frame["images"][0]), "objects": int(frame["objects"][0])}


def matching_images(reader: ProjectReader, flt: Filter, limit: int | None = None) -> pd.DataFrame:
    """dataset, image_id of every matching image (the first ``limit`` if given), sorted."""
    built = build_sql(reader, flt)
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return _run(reader, built, f"SELECT * FROM ({built.images}) ORDER BY 1, 2{tail}")


def matching_objects(reader: ProjectReader, flt: Filter) -> pd.DataFrame:
    """dataset, image_id, object_id of every matching object, sorted."""
    built = build_sql(reader, flt)
    return _run(reader, built, f"SELECT * FROM ({built.objects}) ORDER BY 1, 2, 3")


def project_reader(project: str | Path) -> ProjectReader:
    """A reader for a project folder, with the CLI's one-line error when it is not one."""
    reader = ProjectReader(project)
    if not reader.project.exists():
        raise InputError(str(project), "not a cocolens project (no project.json)", field="--project")
    return reader


def write_filtered_csv(reader: ProjectReader, flt: Filter, out: str | Path, level: str) -> int:
    """The ``export csv`` table (store.wide: ids + one column per metric) restricted to the filter; row count.

    Streamed by DuckDB's COPY into a temporary file, then renamed: readers never see half a CSV.
    """

    from store.wide import image_table_sql, object_table_sql

    if level not in ("image", "object"):
        raise InputError("--level", f"expected image or object, got {level!r}")
    built = build_sql(reader, flt)
    datasets = flt.datasets or None
    if level == "image":
        wide, params = image_table_sql(reader, datasets)
        keep = f"(w.dataset, w.image_id) IN (SELECT (dataset, image_id) FROM ({built.images}))"
    else:
        wide, params = object_table_sql(reader, datasets)
        keep = f"(w.dataset, w.image_id, w.object_id) IN (SELECT (dataset, image_id, object_id) FROM ({built.objects}))"
    sql = f"SELECT w.* FROM ({wide}) w WHERE {keep} ORDER BY ALL"
    from store.csv_export import copy_to_csv

    return copy_to_csv(reader, sql, params, out, None if built.tags is None else {"_tagged": built.tags})
