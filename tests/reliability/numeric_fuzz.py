"""Property fuzz of every numeric field (issue 18), run as ``python -m tests.reliability.numeric_fuzz``.

Ids, coordinates, areas, sizes and scores take extreme values (0, negatives, 2^31, 2^53, 2^63,
1e308, inf, nan, -0.0...). Every draw must end in exit 0 (odd data imported and flagged) or exit 2
with one line, and ``report --json`` must stay strict JSON. It runs in a child process under an
address-space limit and a timeout (test_numeric_fuzz.py), so a draw that segfaults or hangs fails
the test without taking the run down.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from tests.conftest import import_argv

EXTREMES = [0, -1, 1, 2**31, -(2**31), 2**53, 2**63, 2**63 - 1, -(2**63) - 1, 1e308, -1e308]
EXTREMES += [float("inf"), float("-inf"), float("nan"), -0.0, 0.5, 1e-300, 1e9, 100_000]
# Valid but extreme values, drawn more often than the refused ones so most draws reach the metrics.
LARGE = [0, 1, 0.5, -0.0, 1e-300, 2**31, 2**53, 1e9, 1e12, 1e300, 1e308, 60_000, 100_000]
number = st.one_of(st.sampled_from(EXTREMES), st.integers(-(10**6), 10**6), st.floats(-1e4, 1e4))
coordinate = st.one_of(
    st.sampled_from(LARGE), st.sampled_from([-1e308, -(2**63), -5.0]), st.floats(-1e3, 1e5)
)
extent = st.one_of(st.sampled_from(LARGE), st.floats(0, 1e5))
identifier = st.one_of(st.sampled_from([0, 1, 2**31, 2**53, 2**63 - 1]), st.sampled_from(EXTREMES))
size = st.one_of(
    st.sampled_from([1, 2, 600, 800, 45000, 65536, 100000, 2**31, 2**62]), st.sampled_from(EXTREMES)
)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue().strip()


def _check(code: int, err: str, what: str) -> None:
    assert code in (0, 2), (what, code, err[-2000:])
    if code == 2:
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (what, err[-2000:])


@st.composite
def coco_documents(draw) -> dict:
    width, height = draw(size), draw(size)
    ring = [draw(coordinate) for _ in range(2 * draw(st.integers(3, 5)))]
    annotation = {
        "id": draw(identifier),
        "image_id": 7,
        "category_id": 3,
        "bbox": [draw(coordinate), draw(coordinate), draw(extent), draw(extent)],
        "iscrowd": 0,
        "segmentation": [ring],
    }
    if draw(st.booleans()):
        annotation["area"] = draw(st.one_of(extent, st.sampled_from(EXTREMES)))
    if draw(st.integers(0, 3)) == 0:
        annotation["segmentation"] = {"size": [height, width], "counts": [draw(extent), draw(extent)]}
    return {
        "images": [{"id": 7, "file_name": "a.jpg", "width": width, "height": height}],
        "annotations": [annotation],
        "categories": [{"id": 3, "name": "thing"}],
    }


@st.composite
def prediction_files(draw) -> list:
    result = {
        "image_id": draw(st.sampled_from([1, 2, 2, 2, 2**63, -1])),
        "category_id": draw(st.sampled_from([1, 1, 1, 2**63, -(2**63) - 1])),
        "bbox": [draw(coordinate), draw(coordinate), draw(extent), draw(extent)],
        "score": draw(st.one_of(st.floats(0, 1), st.sampled_from(EXTREMES))),
    }
    if draw(st.booleans()):
        result["segmentation"] = [[draw(coordinate) for _ in range(6)]]
    return [result]


def run(examples: int) -> int:
    folder = Path(tempfile.mkdtemp(prefix="numeric-fuzz-"))
    images = folder / "images"
    images.mkdir()
    base = folder / "base"
    good = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 80, "height": 60} for i in (1, 2)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 81, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (folder / "good.json").write_text(json.dumps(good))
    argv = ["import", "coco", "--images", str(images), "--annotations", str(folder / "good.json")]
    assert _cli([*argv, "--project", str(base), "--dataset", "d", "--quiet", "--workers", "1"])[0] == 0
    seen = {"annotations": 0, "predictions": 0, "imported": 0, "refused": 0}
    common = settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    def attempt(kind: str, document: Any, path: Path, argv: list[str]) -> int:
        """Write the drawn ``document`` to ``path``, run the CLI on it, require exit 0 or one line."""
        seen[kind] += 1
        path.write_text(json.dumps(document))
        code, _, err = _cli(argv)
        _check(code, err, json.dumps(document))
        seen["imported" if code == 0 else "refused"] += 1
        return code

    @common
    @given(coco_documents())
    def annotations(coco: dict) -> None:
        ann, project = folder / "ann.json", folder / "p"
        shutil.rmtree(project, ignore_errors=True)
        argv = import_argv(images, ann, project, "d", "--quiet", "--workers", "1")
        if attempt("annotations", coco, ann, argv) == 0:
            code, out, err = _cli(["report", "--project", str(project), "--json"])
            assert code == 0, err
            json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    @common
    @given(prediction_files())
    def predictions(results: list) -> None:
        path = folder / "results.json"
        argv = ["import", "predictions", str(path), "--project", str(base), "--model", "m", "--quiet"]
        attempt("predictions", results, path, argv)

    annotations()
    predictions()
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(run(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
