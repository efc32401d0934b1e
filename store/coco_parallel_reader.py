"""Read a large COCO file on several cores: the annotations array cut into runs of whole records.

The streaming reader (ijson, two passes) keeps one core busy for ~26 CPU-s per 1M objects, ~4 min
for a 10M-object file. Here a compiled scan (store/json_scan.py, in a child process) finds the
top-level members and cuts the ``annotations`` array at record boundaries every ~``CHUNK_BYTES``;
worker processes read their byte range, ``json.loads`` it and validate it with the very validator
of the other readers (column-wise when plain, store/coco_fast_annotations.py), and the driver joins
the columns in file order. Memory: the tables, plus one chunk's parse per worker; the file is never
held whole.

The contract: :func:`read_parallel` returns exactly the tables the streaming reader returns, raises
exactly its one-line error, or returns None and the caller reads the file as before. None is for
anything unusual about the document itself (invalid JSON or UTF-8, NaN literals, duplicate keys,
deep nesting, a category or image record error, a missing section): the streaming reader then
finds and words the problem. A bad annotation record is worded here: the records up to its chunk
are validated again one by one, in file order, which raises the first error as the others do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from store import coco_reader
from store.coco_fast_annotations import append_plain_annotations
from store.errors import InputError
from store.json_layout import Layout, Member, record_ranges

# Bytes of annotations per worker task: parsed, ~10x this in Python objects while validated.
CHUNK_BYTES = 8 * 1024**2
_INT_COLUMNS = ("object_id", "image_id", "category_id", "iscrowd")
_FLOAT_COLUMNS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h", "area")
_WHITESPACE = b" \t\r\n"


class _Unreadable(Exception):
    """Something the streaming reader must decide (and word)."""


def _refuse_constant(name: str) -> Any:
    raise _Unreadable(name)  # NaN / Infinity: not JSON, ijson refuses them too


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _Unreadable("duplicate key")
    return record


def _read_range(handle, start: int, stop: int) -> bytes:
    handle.seek(start)
    return handle.read(stop - start)


def _loads(raw: bytes, wrap: bool = False) -> Any:
    """json.loads as strict as the streaming reader: UTF-8, no NaN literals, no duplicate keys."""
    try:
        text = raw.decode("utf-8")
        return json.loads(
            "[" + text + "]" if wrap else text,
            object_pairs_hook=_unique_keys,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Unreadable(str(exc)) from exc


def _run(raw: bytes, sole: bool) -> list[Any]:
    """The records of one run of an array's records (``sole``: the array's only run)."""
    if not raw.strip(_WHITESPACE):
        if not sole:
            raise _Unreadable("empty record")  # [1,,2]: json.loads of the whole would refuse it
        return []
    return _loads(raw, wrap=True)


def _records(handle, ranges: list[tuple[int, int]]) -> Iterator[list[Any]]:
    """The records of an array member, one run at a time."""
    for start, stop in ranges:
        yield _run(_read_range(handle, start, stop), sole=len(ranges) == 1)


# Per worker process: the file and the header's image sizes and category ids (sent once).
_worker: dict[str, Any] = {}


def _start_worker(
    path: str, image_ids: np.ndarray, widths: np.ndarray, heights: np.ndarray, cats: list
) -> None:
    _worker["path"] = path
    _worker["sizes"] = dict(
        zip(image_ids.tolist(), zip(widths.tolist(), heights.tolist(), strict=True), strict=True)
    )
    _worker["categories"] = set(cats)


def _read_chunk(task: tuple[int, int, bool]) -> dict[str, Any] | None:
    """Parse and validate one run (start, stop, sole) of annotation records; None when it cannot be parsed.

    ``error`` is True when a record is invalid (the driver words it, in file order); otherwise
    the validated columns come back.
    """
    path = _worker["path"]
    validator = coco_reader._Validator(path, "")
    validator.sizes, validator.seen_cat = _worker["sizes"], _worker["categories"]
    start, stop, sole = task
    try:
        with open(path, "rb") as handle:
            records = _run(_read_range(handle, start, stop), sole)
    except _Unreadable:
        return None
    try:
        check = partial(coco_reader._check_segmentation, validator.check)
        if not append_plain_annotations(validator, records, check):
            for i, record in enumerate(records):
                validator.annotation(i, record)
    except InputError:
        return {"error": True}
    return {
        "error": False,
        "ints": {key: np.frombuffer(validator.obj_ints[key], dtype=np.int64) for key in _INT_COLUMNS},
        "floats": {key: np.frombuffer(validator.obj_floats[key], dtype=np.float64) for key in _FLOAT_COLUMNS},
        "segmentations": validator.segmentations,
        "seg_types": validator.seg_types,
        "empty_geometry": validator.empty_geometry,
    }


def _worker_count(workers: int | None) -> int:
    if workers is None:
        workers = min(
            8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )
    return max(1, workers)


def _chunk_results(path: Path, ranges: list, header: coco_reader._Validator, workers: int) -> Iterator[Any]:
    """Each chunk's result in file order, from ``workers`` spawned processes (or this one)."""
    sizes = header.sizes
    initargs = (
        str(path),
        np.fromiter(sizes, dtype=np.int64, count=len(sizes)),
        np.fromiter((w for w, _ in sizes.values()), dtype=np.int64, count=len(sizes)),
        np.fromiter((h for _, h in sizes.values()), dtype=np.int64, count=len(sizes)),
        sorted(header.seen_cat),
    )
    tasks = [(start, stop, len(ranges) == 1) for start, stop in ranges]
    if workers == 1 or len(ranges) == 1:
        _start_worker(*initargs)
        try:
            yield from map(_read_chunk, tasks)
        finally:
            _worker.clear()
        return
    import multiprocessing

    with ProcessPoolExecutor(
        max_workers=min(workers, len(ranges)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=initargs,
    ) as pool:
        yield from pool.map(_read_chunk, tasks)


def _member_map(handle, layout: Layout) -> dict[str, Member]:
    members: dict[str, Member] = {}
    for member in layout.members:
        key = _loads(_read_range(handle, *member.key))
        if not isinstance(key, str) or key in members:
            raise _Unreadable("top-level key")  # json.load keeps the last of two: the old path decides
        members[key] = member
    return members


def _array_ranges(handle, member: Member) -> list[tuple[int, int]]:
    """Record runs of a member that must be an array with only whitespace around it."""
    if member.container is None or not member.is_array:
        raise _Unreadable("not an array")
    before = _read_range(handle, member.value[0], member.container[0])
    after = _read_range(handle, member.container[1] + 1, member.value[1])
    if before.strip(_WHITESPACE) or after.strip(_WHITESPACE):
        raise _Unreadable("text around an array")
    return record_ranges(member)


def _header(
    handle, path: Path, dataset: str, members: dict[str, Member]
) -> tuple[coco_reader._Validator, dict]:
    """Categories and images validated (any error: the streaming reader words it), and info."""
    if "images" not in members or "categories" not in members:
        raise _Unreadable("missing section")
    validator = coco_reader._Validator(str(path), dataset)
    info: Any = {}
    for key, member in members.items():  # every other member parsed: invalid JSON anywhere is found
        if key not in ("images", "annotations"):
            value = _loads(_read_range(handle, *member.value))
            if key == "info":
                info = value
    try:
        categories = _loads(_read_range(handle, *members["categories"].value))
        if not isinstance(categories, list):
            raise _Unreadable("categories")
        for i, record in enumerate(categories):
            validator.category(i, record)
        index = 0
        for run in _records(handle, _array_ranges(handle, members["images"])):
            for record in run:
                validator.image(index, record)
                index += 1
    except InputError as exc:
        raise _Unreadable("header record") from exc
    return validator, info if isinstance(info, dict) else {}


def _first_annotation_error(
    handle, header: coco_reader._Validator, ranges: list[tuple[int, int]], last: int
) -> InputError | None:
    """Validate the annotations of ranges[:last + 1] one by one, in file order: the first error."""
    validator = coco_reader._Validator(header.check.file, header.dataset)
    validator.sizes, validator.seen_cat = header.sizes, header.seen_cat
    index = 0
    for run in _records(handle, ranges[: last + 1]):
        for record in run:
            try:
                validator.annotation(index, record)
            except InputError as exc:
                return exc
            index += 1
    return None


def _first_repeated_pair(image_ids: np.ndarray, ids: np.ndarray) -> int | None:
    """Row of the first (image_id, id) pair that an earlier row already had; None when all differ."""
    order = np.lexsort((np.arange(len(ids)), ids, image_ids))
    same = (image_ids[order][1:] == image_ids[order][:-1]) & (ids[order][1:] == ids[order][:-1])
    if not same.any():
        return None
    return int(order[1:][same].min())


def read_parallel(path: Path, dataset: str, workers: int | None = None) -> coco_reader.CocoTables | None:
    """The streaming reader's tables (or its error) read on ``workers`` cores; None: read it as before."""
    from concurrent.futures.process import BrokenProcessPool

    with open(path, "rb") as handle:
        try:
            return _read(handle, path, dataset, _worker_count(workers))
        except (_Unreadable, BrokenProcessPool):  # a worker killed (out of memory): read in one process
            return None


def _scan(path: str, step: int) -> Layout | None:
    from store.json_scan import scan_layout

    with open(path, "rb") as handle:
        return scan_layout(handle, step)


def _scan_in_child(path: Path, step: int) -> Layout | None:
    """The layout scanned in a child process: numba and its compiled scan (~130 MB) stay out of the
    importer, whose peak is later, with the tables and the label metrics."""
    import multiprocessing

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_scan, str(path), CHUNK_BYTES).result()


def _read(handle, path: Path, dataset: str, workers: int) -> coco_reader.CocoTables:
    layout = _scan(str(path), CHUNK_BYTES) if workers == 1 else _scan_in_child(path, CHUNK_BYTES)
    if layout is None or layout.deepest >= coco_reader.MAX_JSON_DEPTH - 1:
        raise _Unreadable("layout")
    members = _member_map(handle, layout)
    validator, info = _header(handle, path, dataset, members)
    ranges = _array_ranges(handle, members["annotations"]) if "annotations" in members else []
    chunk_ends, failed = [], None
    for number, result in enumerate(_chunk_results(path, ranges, validator, workers)):
        if result is None:
            raise _Unreadable("chunk")  # still in file order: invalid JSON wins over a record error
        if result["error"]:
            failed = number if failed is None else failed
            continue
        if failed is not None:
            continue  # read on only to find invalid JSON further on
        for key in _INT_COLUMNS:
            validator.obj_ints[key].frombytes(result["ints"][key].tobytes())
        for key in _FLOAT_COLUMNS:
            validator.obj_floats[key].frombytes(result["floats"][key].tobytes())
        validator.segmentations.extend(result["segmentations"])
        validator.seg_types.extend(result["seg_types"])
        validator.empty_geometry += result["empty_geometry"]
        chunk_ends.append(len(validator.segmentations))
    ids = np.frombuffer(validator.obj_ints["object_id"], dtype=np.int64)
    image_ids = np.frombuffer(validator.obj_ints["image_id"], dtype=np.int64)
    repeated = _first_repeated_pair(image_ids, ids)
    if failed is not None or repeated is not None:
        last = failed if repeated is None else int(np.searchsorted(chunk_ends, repeated, side="right"))
        error = _first_annotation_error(handle, validator, ranges, last)
        if error is None:
            raise _Unreadable("no error found again")
        raise error
    validator.reused_ids = len(ids) - len(np.unique(ids))
    del ids, image_ids  # views of the arrays that tables() copies
    return validator.tables(info)
