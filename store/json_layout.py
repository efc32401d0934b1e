"""The top-level layout of a JSON document as store/json_scan.py finds it, and the record runs of its
arrays; plain data, so that a process reading it does not load numba's compiler (~130 MB)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One top-level ``"key": value``: byte spans of the key and the value (whitespace included)."""

    key: tuple[int, int]
    value: tuple[int, int]
    container: tuple[int, int] | None  # offsets of the value's own [ or { and its closing bracket
    is_array: bool
    cuts: list[int]  # record-boundary commas inside an array value, ~step bytes apart


@dataclass(frozen=True)
class Layout:
    members: list[Member]
    deepest: int  # deepest nesting in the document (the top-level object is 1)


def record_ranges(member: Member) -> list[tuple[int, int]]:
    """Byte ranges of runs of whole records of an array member: ``b"[" + file[a:b] + b"]"`` parses as
    a list of those records, and the runs in order are the array's records in order."""
    assert member.container is not None and member.is_array
    bounds = [member.container[0], *member.cuts, member.container[1]]
    return [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]
