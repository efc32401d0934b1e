"""Read and validate a COCO annotations file into flat tables.

Every problem becomes one ``InputError`` naming the file, the record (``annotations[12] (id=345)``)
and the field, before anything is written. Geometry that is well-formed but odd (a polygon of
two points, points outside the image) is not an error here: the label metrics flag it, because a
user wants to see those labels, not lose the whole import over them.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from metrics.geometry import rle_counts_problem
from store.coco_fast_annotations import append_plain_annotations
from store.errors import InputError

# json.load needs ~10× the file in memory: the limit applies where a file is read whole (a file the
# streaming reader cannot take, or predictions); read_coco streams files of any size.
MAX_ANNOTATION_BYTES = 4 * 1024**3
# Files above this are streamed (ijson, two passes): json.load's ~10× would pass ~300 MB. Below it
# json.load is faster and its memory is bounded anyway. Both paths share one validator.
STREAM_ABOVE_BYTES = 32 * 1024**2
# Files above this are read on several cores (store/coco_parallel_reader.py: the annotations array
# cut at record boundaries, chunks parsed and validated in worker processes), falling back to the
# streaming reader for anything unusual; same tables, same errors.
PARALLEL_ABOVE_BYTES = 32 * 1024**2
# COCO needs 5 levels (annotations → record → segmentation → ring → number); info/licences a few
# more. Deeper documents are refused in one line: json.load's recursion and writing the
# dataset's info back out failed with tracebacks on 100,000 levels, ijson built ever longer prefixes.
MAX_JSON_DEPTH = 100
# Ids, widths and heights are stored as int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass
class CocoTables:
    images: pd.DataFrame
    objects: pd.DataFrame
    categories: pd.DataFrame
    info: dict[str, Any]
    warnings: dict[str, int]


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _is_utf8(text: str) -> bool:
    """False for a lone surrogate (JSON ``\\udce9``: how Python writes a non-UTF-8 byte file name).

    Such text cannot be stored (Parquet strings are UTF-8): it crashed the import with a traceback.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_PLAIN_NUMBERS = {int, float}


def _all_numbers(values: list) -> bool:
    """``all(_is_number(v) for v in values)``, in one C-speed pass for the usual all-finite list.

    Polygons hold most of a big file's numbers; the per-value Python check was the reader's
    largest cost. Anything unusual (bool, None, text, a non-finite or huge value) takes the exact
    per-value path, so the answer, and any exception, is the same as before.
    """
    if set(map(type, values)) <= _PLAIN_NUMBERS:
        try:
            if math.isfinite(sum(values)):
                return True
        except OverflowError:
            pass
    return all(_is_number(v) for v in values)


def load_json(path: Path) -> Any:
    """Parse a JSON file with a one-line error for every way it can be unreadable."""
    if not path.exists():
        raise InputError(str(path), "file not found")
    if not path.is_file():
        raise InputError(str(path), "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(str(path), "file is empty")
    if size > MAX_ANNOTATION_BYTES:
        raise InputError(
            str(path), f"file is {size / 1e9:.1f} GB; the limit is {MAX_ANNOTATION_BYTES / 1e9:.0f} GB"
        )
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise InputError(str(path), f"cannot be read: {exc.strerror}") from exc
    except MemoryError as exc:
        raise InputError(str(path), f"file of {size / 1e9:.1f} GB does not fit in memory") from exc
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicate_keys)
    except DuplicateKey as exc:
        raise _duplicate_key(str(path), exc.key, exc.where) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise InputError(str(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except MemoryError as exc:
        raise InputError(
            str(path), f"file of {size / 1e9:.1f} GB does not fit in memory once parsed"
        ) from exc
    except ValueError as exc:
        message = str(exc)
        if "digits" in message:  # Python refuses to read integers of more than 4300 digits
            message = "a number with more than 4300 digits"
        raise InputError(str(path), message) from exc
    return data


def _duplicate_key(file: str, key: str, where: str) -> InputError:
    return InputError(
        file,
        f"key {key!r} appears twice in one JSON object (a JSON reader keeps only the last one); "
        "remove or merge the duplicate",
        record=where,
    )


class DuplicateKey(ValueError):
    def __init__(self, key: str, where: str):
        super().__init__(key)
        self.key, self.where = key, where


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys: "annotations" twice imported the second list only."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                record = obj.get("id")
                where = f"object with id {record}" if isinstance(record, int) else "an object"
                if {"images", "categories"} & obj.keys():
                    where = "top level"
                raise DuplicateKey(key, where)
            seen.add(key)
    return obj


def _depth_exceeds(data: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return False


class _Checker:
    """Small helpers that raise InputError naming the current record."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, record: str, field: str | None, message: str) -> None:
        raise InputError(self.file, message, record=record, field=field)

    def int_field(self, rec: dict, key: str, where: str, minimum: int | None = None, required: bool = True):
        if key not in rec:
            if required:
                self.fail(where, key, "missing")
            return None
        value = rec[key]
        if not _is_int(value):
            self.fail(where, key, f"expected an integer, got {_short(value)}")
        value = int(value)
        if not INT64_MIN <= value <= INT64_MAX:
            self.fail(where, key, f"{value} is outside the 64-bit integer range cocolens stores")
        if minimum is not None and value < minimum:
            self.fail(where, key, f"must be ≥ {minimum}, got {value}")
        return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _where(section: str, index: int, rec: Any) -> str:
    if isinstance(rec, dict) and "id" in rec and _is_int(rec.get("id")):
        return f"{section}[{index}] (id={int(rec['id'])})"
    return f"{section}[{index}]"


def _safe_file_name(check: _Checker, where: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        check.fail(where, "file_name", f"expected a non-empty string, got {_short(name)}")
    if "\x00" in name:
        check.fail(where, "file_name", "contains a NUL byte")
    if not _is_utf8(name):
        check.fail(
            where,
            "file_name",
            f"{name!r} is not valid Unicode (a lone surrogate: a non-UTF-8 byte name); rename the file to UTF-8",
        )
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        check.fail(where, "file_name", f"{name!r} leaves the images folder")
    return name


def _check_segmentation(check: _Checker, where: str, seg: Any, width: int, height: int) -> tuple[str, str]:
    """Return (json text, seg_type); raise on malformed structure."""
    if seg is None or seg == [] or seg == {}:
        return "", "none"
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not isinstance(poly, list):
                check.fail(where, "segmentation", f"polygon {k} is not a list of numbers")
            if not _all_numbers(poly):
                check.fail(where, "segmentation", f"polygon {k} holds a value that is not a finite number")
            if len(poly) % 2:
                check.fail(
                    where, "segmentation", f"polygon {k} has an odd number of coordinates ({len(poly)})"
                )
        if all(len(p) == 0 for p in seg):
            return "", "none"
        return json.dumps(seg, separators=(",", ":")), "polygon"
    if isinstance(seg, dict):
        size = seg.get("size")
        counts = seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)):
            check.fail(where, "segmentation.size", f"expected [height, width], got {_short(size)}")
        if [int(size[0]), int(size[1])] != [height, width]:
            check.fail(
                where,
                "segmentation.size",
                f"RLE size {size} differs from the image's [height, width] [{height}, {width}]",
            )
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                check.fail(
                    where, "segmentation.counts", "uncompressed RLE counts must be non-negative integers"
                )
            if sum(int(v) for v in counts) != height * width:
                check.fail(
                    where,
                    "segmentation.counts",
                    f"RLE counts sum to {sum(counts)}, not height×width {height * width}",
                )
            return json.dumps(
                {"size": size, "counts": [int(v) for v in counts]}, separators=(",", ":")
            ), "rle"
        if isinstance(counts, str):
            if not counts or not all(48 <= ord(c) <= 111 for c in counts):
                check.fail(
                    where,
                    "segmentation.counts",
                    "compressed RLE counts hold characters outside the RLE alphabet",
                )
            # Runs that do not fill the frame exactly made pycocotools spin for ever (issue 18).
            problem = rle_counts_problem(counts, height, width)
            if problem:
                check.fail(where, "segmentation.counts", problem)
            return json.dumps({"size": size, "counts": counts}, separators=(",", ":")), "rle_compressed"
        check.fail(where, "segmentation.counts", f"expected a list or a string, got {_short(counts)}")
    check.fail(where, "segmentation", f"expected polygons (list) or RLE (object), got {_short(seg)}")
    raise AssertionError("unreachable")


class _Validator:
    """Validates records one at a time, in file order, and accumulates the tables column by column.

    Shared by the streaming reader and the in-memory one, so both raise the very same messages.
    Numeric columns live in ``array`` buffers (8 bytes a value, not a Python object each): 1M
    objects cost ~100 MB here instead of ~400 MB as tuples.
    """

    def __init__(self, file: str, dataset: str):
        self.check = _Checker(file)
        self.dataset = dataset
        self.categories: list[tuple[str, int, str, str]] = []
        self.seen_cat: set[int] = set()
        self.category_names: set[str] = set()
        self.duplicate_category_names = 0
        self.image_ids = array("q")
        self.image_names: list[str] = []
        self.image_widths = array("q")
        self.image_heights = array("q")
        self.sizes: dict[int, tuple[int, int]] = {}
        self.obj_ints = {key: array("q") for key in ("object_id", "image_id", "category_id", "iscrowd")}
        self.obj_floats = {key: array("d") for key in ("bbox_x", "bbox_y", "bbox_w", "bbox_h", "area")}
        self.segmentations: list[str] = []
        self.seg_types: list[str] = []
        self.seen_ann: set[tuple[int, int]] = set()
        self.ids_seen: set[int] = set()
        self.reused_ids = 0
        self.empty_geometry = 0

    def category(self, i: int, rec: Any) -> None:
        check = self.check
        where = _where("categories", i, rec)
        if not isinstance(rec, dict):
            check.fail(where, None, f"expected an object, got {_short(rec)}")
        cid = check.int_field(rec, "id", where)
        if cid in self.seen_cat:
            check.fail(where, "id", f"duplicate category id {cid}")
        self.seen_cat.add(cid)
        name = rec.get("name")
        if not isinstance(name, str) or not name.strip():
            check.fail(where, "name", f"expected a non-empty string, got {_short(name)}")
        for key in ("name", "supercategory"):
            if isinstance(rec.get(key), str) and not _is_utf8(rec[key]):
                check.fail(where, key, f"{rec[key]!r} is not valid Unicode (a lone surrogate)")
        if name in self.category_names:
            self.duplicate_category_names += 1  # kept apart by id; exports name them by name + id
        self.category_names.add(name)
        supercategory = rec.get("supercategory", "")
        self.categories.append(
            (self.dataset, cid, name, supercategory if isinstance(supercategory, str) else "")
        )

    def image(self, i: int, rec: Any) -> None:
        check = self.check
        where = _where("images", i, rec)
        if not isinstance(rec, dict):
            check.fail(where, None, f"expected an object, got {_short(rec)}")
        iid = check.int_field(rec, "id", where, minimum=0)
        if iid in self.sizes:
            check.fail(where, "id", f"duplicate image id {iid}")
        file_name = _safe_file_name(check, where, rec.get("file_name"))
        width = check.int_field(rec, "width", where, minimum=1)
        height = check.int_field(rec, "height", where, minimum=1)
        self.sizes[iid] = (width, height)
        self.image_ids.append(iid)
        self.image_names.append(file_name)
        self.image_widths.append(width)
        self.image_heights.append(height)

    def annotation(self, i: int, rec: Any) -> None:
        check = self.check
        where = _where("annotations", i, rec)
        if not isinstance(rec, dict):
            check.fail(where, None, f"expected an object, got {_short(rec)}")
        aid = check.int_field(rec, "id", where, minimum=0)
        image_id = check.int_field(rec, "image_id", where)
        if image_id not in self.sizes:
            check.fail(where, "image_id", f"no image has id {image_id}")
        # Objects are keyed by (image_id, id): an id reused on another image (TACO has two) is
        # kept and counted; reused within one image it is ambiguous and refused.
        if (image_id, aid) in self.seen_ann:
            check.fail(where, "id", f"duplicate annotation id {aid} in image {image_id}")
        self.seen_ann.add((image_id, aid))
        if aid in self.ids_seen:
            self.reused_ids += 1
        self.ids_seen.add(aid)
        category_id = check.int_field(rec, "category_id", where)
        if category_id not in self.seen_cat:
            check.fail(where, "category_id", f"no category has id {category_id}")
        bbox = rec.get("bbox")
        if "bbox" not in rec:
            check.fail(where, "bbox", "missing")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            check.fail(where, "bbox", f"expected [x, y, width, height], got {_short(bbox)}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
            check.fail(where, "bbox", f"holds a value that is not a finite number: {_short(bbox)}")
        if not all(math.isfinite(v) for v in bbox):
            # Tools write [inf, inf, -inf, -inf] for a label with no geometry (TACO's crowd split
            # has 15). One such label must not sink thousands: kept with a NaN box, flagged by the
            # invalid_geometry metric, counted in the dataset's warnings.
            bbox = [math.nan] * 4
            self.empty_geometry += 1
        elif bbox[2] < 0 or bbox[3] < 0:
            check.fail(where, "bbox", f"negative width or height: {_short(bbox)}")
        iscrowd = rec.get("iscrowd", 0)
        if iscrowd not in (0, 1) or isinstance(iscrowd, bool):
            check.fail(where, "iscrowd", f"expected 0 or 1, got {_short(iscrowd)}")
        width, height = self.sizes[image_id]
        seg_text, seg_type = _check_segmentation(check, where, rec.get("segmentation"), width, height)
        area = rec.get("area")
        if area is None:
            area = float(bbox[2]) * float(bbox[3])
        elif not _is_number(area) or area < 0:
            check.fail(where, "area", f"expected a non-negative finite number, got {_short(area)}")
        ints, floats = self.obj_ints, self.obj_floats
        ints["object_id"].append(aid)
        ints["image_id"].append(image_id)
        ints["category_id"].append(category_id)
        ints["iscrowd"].append(int(iscrowd))
        for key, value in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), bbox, strict=True):
            floats[key].append(float(value))
        floats["area"].append(float(area))
        self.segmentations.append(seg_text)
        self.seg_types.append(seg_type)

    def tables(self, info: dict[str, Any]) -> CocoTables:
        warnings = {
            key: value
            for key, value in (
                ("annotation_ids_reused_across_images", self.reused_ids),
                ("annotations_without_geometry", self.empty_geometry),
                ("categories_sharing_a_name_with_another", self.duplicate_category_names),
            )
            if value
        }
        count = len(self.segmentations)
        objects = pd.DataFrame(
            {
                "dataset": _text([self.dataset] * count),
                **{key: np.frombuffer(self.obj_ints[key], dtype="int64") for key in OBJECT_INT_COLUMNS[:3]},
                **{key: np.frombuffer(values, dtype="float64") for key, values in self.obj_floats.items()},
                "iscrowd": np.frombuffer(self.obj_ints["iscrowd"], dtype="int64"),
                "segmentation": _text(self.segmentations),
                "seg_type": _text(self.seg_types),
            },
            columns=OBJECT_COLUMNS,
        )
        images = pd.DataFrame(
            {
                "dataset": _text([self.dataset] * len(self.image_names)),
                "image_id": np.frombuffer(self.image_ids, dtype="int64"),
                "file_name": _text(self.image_names),
                "width": np.frombuffer(self.image_widths, dtype="int64"),
                "height": np.frombuffer(self.image_heights, dtype="int64"),
            },
            columns=["dataset", "image_id", "file_name", "width", "height"],
        )
        return CocoTables(
            images=images,  # the constructor copied the array buffers: writable, owned
            objects=objects,
            categories=pd.DataFrame(
                self.categories, columns=["dataset", "category_id", "name", "supercategory"]
            ).astype({"category_id": "int64"}),
            info=info,
            warnings=warnings,
        )


def _text(values: list[str]) -> pd.Series:
    """A text column typed as pandas infers it from rows (object when empty), as before streaming."""
    return pd.Series(values, dtype=object if not values else None)


OBJECT_INT_COLUMNS = ["object_id", "image_id", "category_id", "iscrowd"]
OBJECT_COLUMNS = [
    "dataset",
    "object_id",
    "image_id",
    "category_id",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
    "area",
    "iscrowd",
    "segmentation",
    "seg_type",
]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(str(path), "file not found")
    if not path.is_file():
        raise InputError(str(path), "not a regular file")
    if path.stat().st_size == 0:
        raise InputError(str(path), "file is empty")


class _NotStreamable(Exception):
    """The file is not a plain well-formed COCO object; the in-memory reader gives the exact error."""


def _stream_header(path: Path, validator: _Validator) -> dict[str, Any]:
    """Pass 1 over the file: categories, images and info, validated one record at a time.

    Annotations are skipped here (they need every category and image first, and COCO files put
    categories last). The whole file is parsed, so invalid JSON anywhere is found before any record
    error is reported, as with json.load. Returns info.
    """
    import ijson
    from ijson.common import ObjectBuilder

    first_error: dict[str, InputError] = {}
    counters = {"images": 0, "categories": 0}
    handlers = {"images": validator.image, "categories": validator.category}
    seen_keys: set[str] = set()
    info: Any = {}
    key, at_value = "", False
    builder: ObjectBuilder | None = None
    depth = 0
    with open(path, "rb") as handle:
        events = ijson.parse(handle, use_float=True)
        try:
            _, event, _ = next(events)
        except StopIteration as exc:
            raise _NotStreamable from exc
        if event != "start_map":
            raise _NotStreamable
        level = 1
        keys: list[set[str] | None] = [set()]  # the keys of each open object (None: an array)
        for prefix, event, value in events:
            if event == "map_key":
                open_keys = keys[-1]
                if open_keys is not None:
                    if value in open_keys:
                        where = "top level" if level == 1 else f"an object in '{key}'"
                        raise _duplicate_key(str(path), value, where)
                    open_keys.add(value)
            elif event in ("start_map", "start_array"):
                level += 1
                if level > MAX_JSON_DEPTH:
                    raise InputError(str(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                keys.append(set() if event == "start_map" else None)
            elif event in ("end_map", "end_array"):
                level -= 1
                keys.pop()
            if builder is not None:
                builder.event(event, value)
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if depth == 0:
                    _deliver(key, builder.value, handlers, counters, first_error)
                    if key == "info":
                        info = builder.value
                    builder = None
                continue
            if prefix == "":
                if event == "map_key":
                    if value in seen_keys:
                        raise _NotStreamable  # json.load keeps the last one; let it decide
                    seen_keys.add(value)
                    key, at_value = value, True
                continue
            if at_value:  # the first event of a top-level value tells its type
                at_value = False
                if key in ("images", "categories", "annotations") and event != "start_array":
                    raise _NotStreamable  # not a list: the in-memory reader names it
                if key == "info":
                    if event in ("start_map", "start_array"):
                        builder, depth = ObjectBuilder(), 1
                        builder.event(event, value)
                    else:
                        info = value
                continue
            if key in handlers and prefix == key + ".item":
                if event in ("start_map", "start_array"):
                    builder, depth = ObjectBuilder(), 1
                    builder.event(event, value)
                else:
                    _deliver(key, value, handlers, counters, first_error)
    if "images" not in seen_keys or "categories" not in seen_keys:
        raise _NotStreamable
    for section in ("categories", "images"):
        if section in first_error:
            raise first_error[section]
    return info if isinstance(info, dict) else {}


def _deliver(
    key: str,
    record: Any,
    handlers: dict[str, Any],
    counters: dict[str, int],
    first_error: dict[str, InputError],
) -> None:
    """Validate one record of a section, keeping only that section's first error (raised later)."""
    if key not in handlers:
        return
    index = counters[key]
    counters[key] += 1
    if key in first_error:
        return
    try:
        handlers[key](index, record)
    except InputError as exc:
        first_error[key] = exc


def _read_streaming(path: Path, dataset: str) -> CocoTables:
    """Two passes with ijson: memory grows with the tables, not with ~10× the JSON text."""
    import ijson

    validator = _Validator(str(path), dataset)
    try:
        info = _stream_header(path, validator)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _NotStreamable from exc
    with open(path, "rb") as handle:
        for i, rec in enumerate(ijson.items(handle, "annotations.item", use_float=True)):
            validator.annotation(i, rec)
    return validator.tables(info)


def _read_loaded(data: Any, path: Path, dataset: str) -> CocoTables:
    """Validate an already parsed COCO document (the exact messages for every structural problem)."""
    validator = _Validator(str(path), dataset)
    check = validator.check
    if not isinstance(data, dict):
        check.fail(
            "top level",
            None,
            f"expected a JSON object with images/annotations/categories, got {type(data).__name__}",
        )
    for key in ("images", "categories"):
        if key not in data:
            check.fail("top level", key, "missing")
        if not isinstance(data[key], list):
            check.fail("top level", key, f"expected a list, got {type(data[key]).__name__}")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        check.fail("top level", "annotations", f"expected a list, got {type(annotations).__name__}")
    for i, rec in enumerate(data["categories"]):
        validator.category(i, rec)
    for i, rec in enumerate(data["images"]):
        validator.image(i, rec)
    if not append_plain_annotations(validator, annotations, partial(_check_segmentation, check)):
        for i, rec in enumerate(annotations):
            validator.annotation(i, rec)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    # info is written back verbatim (dataset.json): a deep one failed only then, after the image pass.
    # Records nested deeper than COCO's few levels are refused by their field checks.
    if _depth_exceeds(info, MAX_JSON_DEPTH - 1):
        check.fail("top level", "info", f"nested deeper than {MAX_JSON_DEPTH} levels")
    return validator.tables(info)


def read_coco(path: str | Path, dataset: str, workers: int | None = None) -> CocoTables:
    """Validate a COCO file completely, then return its tables (ids as in the file).

    Streams a large file (ijson) so that a 1M-annotation file needs the tables' memory, not
    json.load's ~10× the file size. Anything the streaming parser does not accept as a plain COCO object
    (invalid JSON, NaN/Infinity literals, a BOM, a top level that is not an object...) is read by
    json.load instead, which gives the one-line error or reads the file as it always did.
    Above ``PARALLEL_ABOVE_BYTES`` the file is first read on ``workers`` cores (default: this
    machine's, up to 8), which gives the streaming reader's tables and errors, or leaves the file
    to it when anything is unusual.
    """
    path = Path(path)
    _check_file(path)
    if path.stat().st_size > PARALLEL_ABOVE_BYTES:
        from store.coco_parallel_reader import read_parallel

        tables = read_parallel(path, dataset, workers)
        if tables is not None:
            return tables
    if path.stat().st_size > STREAM_ABOVE_BYTES:
        try:
            return _read_streaming(path, dataset)
        except _NotStreamable:
            pass
    return _read_loaded(load_json(path), path, dataset)
