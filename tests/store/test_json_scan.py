"""The compiled JSON scan (store/json_scan.py) finds members and record boundaries exactly."""

from __future__ import annotations

import io
import json

import pytest

from store.json_layout import record_ranges
from store.json_scan import scan_layout

TRICKY = ["a,b", "}", "]", '"', "\\", "\\\\", '\\"],[{', "\u00e9\U0001f600", ""]


def _document() -> dict:
    return {
        "info": {"t": TRICKY, "n": [[1, [2, {"x": "]"}]]]},
        "images": [{"id": i, "name": TRICKY[i % len(TRICKY)]} for i in range(30)],
        "empty": [],
        "number": -1.5e3,
        "text": "x,y:{z}",
        "annotations": [
            {"id": i, "seg": [[i, i + 1]], "s": TRICKY[(i * 7) % len(TRICKY)]} for i in range(50)
        ],
    }


@pytest.mark.parametrize("step", [1, 5, 64, 1000, 1 << 30])
@pytest.mark.parametrize("indent", [None, 0, 3])
def test_members_and_record_runs_parse_back_to_the_document(step, indent):
    document = _document()
    raw = json.dumps(document, indent=indent, ensure_ascii=bool(indent)).encode()
    layout = scan_layout(io.BytesIO(raw), step, block_bytes=37)  # blocks cut inside strings and escapes
    assert layout is not None and layout.deepest == 6
    members = {json.loads(raw[slice(*m.key)]): m for m in layout.members}
    assert list(members) == list(document)
    for key, member in members.items():
        assert json.loads(raw[slice(*member.value)]) == document[key]
        if isinstance(document[key], list):
            ranges = record_ranges(member)
            runs = [json.loads(b"[" + raw[a:b] + b"]") for a, b in ranges if raw[a:b].strip()]
            assert [record for run in runs for record in run] == document[key]
            if step == 1 and len(document[key]) > 1:
                assert len(ranges) == len(document[key])  # a cut at every record
        else:
            assert member.cuts == [] or isinstance(document[key], dict)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1, 2]",
        b"{}",
        b'{"a": 1} x',
        b'x {"a": 1}',
        b'{"a": 1}{"b": 2}',
        b'{"a": [1, 2}',
        b'{"a": "open',
        b'{"a" 1}',
        b'{"a": 1: 2}',
        b'{"a": [1] [2]}',
        b'{"a": 1,}',
        b'{"a": 1]}',
        b'\xef\xbb\xbf{"a": 1}',
    ],
)
def test_anything_but_one_object_of_members_is_refused(raw):
    assert scan_layout(io.BytesIO(raw), 4) is None
