"""The hostile-input corpus, counted from the case lists the tests run (docs/RELIABILITY.md quotes it)."""

from __future__ import annotations

import re

from tests.conftest import REPO
from tests.metrics import test_image
from tests.reliability import (
    test_coco_properties,
    test_damaged_projects,
    test_export_targets,
    test_extreme_predictions,
    test_extremes,
    test_hostile_configs,
    test_hostile_images,
    test_hostile_plugins,
    test_large_annotations,
    test_security,
)
from tests.store import test_malformed_coco, test_predictions_import


def _parametrized(function, index: int = 1) -> int:
    return len(function.pytestmark[0].args[index])


def corpus() -> dict[str, dict[str, int]]:
    """area → {where the cases live: how many distinct hostile inputs}."""
    fake_results = [{"image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}] * 8
    return {
        "annotations": {
            "tests/store/test_malformed_coco.py CASES": len(test_malformed_coco.CASES),
            "tests/store/test_malformed_coco.py RAW_CASES": len(test_malformed_coco.RAW_CASES),
            "tests/store/test_malformed_coco.py missing file/folder, bad name, fresh project": 4,
            "tests/reliability/test_coco_properties.py CORRUPTIONS": len(test_coco_properties.CORRUPTIONS),
            "tests/reliability/test_large_annotations.py": len(test_large_annotations.STREAMED_ERRORS) + 3,
            "tests/reliability/test_security.py climbing file names": _parametrized(
                test_security.test_file_names_that_climb_out_are_refused
            ),
            "tests/reliability/test_hostile_images.py non-Unicode names": 2,
            "tests/reliability/test_extremes.py HUGE_GEOMETRY": len(test_extremes.HUGE_GEOMETRY),
            "tests/reliability/test_extremes.py 100000² and 45000² records, 200,000-vertex zigzag": 3,
            "tests/reliability/test_extremes.py 45000² RLE exported with --max-side": 1,
            "tests/reliability/test_extremes.py RLE runs not filling the frame / malformed": 1
            + _parametrized(test_extremes.test_compressed_rle_with_bad_runs_is_refused, 1),
            "tests/reliability/test_extremes.py ids beyond int64": _parametrized(
                test_extremes.test_ids_beyond_64_bits_are_one_line, 1
            ),
            "tests/reliability/test_extremes.py JSON 100,000 deep (json, streaming × info, annotation)": 4,
            "tests/reliability/test_silent_surprises.py duplicate keys (top level, record), 5000 digits × 2 paths": 6,
            "tests/reliability/test_silent_surprises.py shared category name, area > image": 2,
        },
        "images": {
            "tests/reliability/test_hostile_images.py CASES (store level)": len(test_hostile_images.CASES),
            "tests/metrics/test_image.py modes": _parametrized(
                test_image.test_unusual_modes_decode_to_sensible_rgb, 1
            ),
            "tests/metrics/test_image.py broken files": _parametrized(
                test_image.test_broken_files_never_raise, 1
            ),
            "tests/metrics/test_image.py bomb": 1,
            "tests/reliability/test_extremes.py symlink loops (self, cycle, path through one)": 3,
            "tests/reliability/test_extremes.py 100 GB sparse file": 1,
            "tests/reliability/test_silent_surprises.py NFD name, newline name, 108 MP, lying SOF, size mismatch": 5,
        },
        "predictions": {
            "tests/store/test_predictions_import.py _bad_cases": len(
                test_predictions_import._bad_cases(fake_results)
            ),
            "tests/reliability/test_extreme_predictions.py REFUSED": len(test_extreme_predictions.REFUSED),
            "tests/reliability/test_extreme_predictions.py 100,000 deep, 10^4 classes, 10^5 categories, frame > 2^32 px": 4,
            "tests/reliability/test_extreme_predictions.py polygon outline too long to trace": 1,
            "tests/reliability/test_silent_surprises.py half the predictions with masks": 1,
        },
        "configs": {
            "tests/reliability/test_hostile_configs.py CONFIG_CASES": len(test_hostile_configs.CONFIG_CASES),
            "tests/reliability/test_hostile_configs.py missing/folder/non-UTF-8/inf": 4,
        },
        "custom metrics": {
            "tests/reliability/test_hostile_plugins.py PLUGIN_CASES": len(test_hostile_plugins.PLUGIN_CASES),
            "tests/reliability/test_hostile_plugins.py dotted module, raising pixel metric": 2,
        },
        "names": {"tests/reliability/test_security.py BAD_NAMES": len(test_security.BAD_NAMES)},
        "projects": {
            "tests/reliability/test_damaged_projects.py --project naming a file (4 commands)": 4,
            "tests/reliability/test_damaged_projects.py truncated project.json, missing plugin": 2,
            "tests/reliability/test_damaged_projects.py truncated images.parquet": _parametrized(
                test_damaged_projects.test_truncated_images_parquet
            ),
            "tests/reliability/test_damaged_projects.py read-only file system (3 commands)": 3,
            "tests/reliability/test_interrupts.py stale stage of an edited file": 1,
            "tests/reliability/test_damaged_projects.py full disk (import, export csv, export coco)": 3,
            "tests/reliability/test_damaged_projects.py other truncated files": _parametrized(
                test_damaged_projects.test_other_truncated_project_files, 1
            ),
            "tests/reliability/test_export_targets.py --out inside the project (csv, coco)": _parametrized(
                test_export_targets.test_out_inside_the_project_is_refused, 1
            )
            * 2,
            "tests/reliability/test_export_targets.py --out a FIFO, a folder, a device": 5,
            "tests/reliability/test_damaged_projects.py damaged files opened in the app": _parametrized(
                test_damaged_projects.test_the_app_names_a_damaged_file_in_one_line
            ),
            "tests/store/test_commit_journal.py kill -9 before / at two points of the embeddings commit": 3,
        },
    }


DOC_AREA = {"configs": "training configs"}  # the area's name in docs/RELIABILITY.md's table


def test_corpus_has_at_least_60_hostile_inputs_in_every_area():
    counts = corpus()
    totals = {area: sum(parts.values()) for area, parts in counts.items()}
    assert all(total >= 5 for total in totals.values()), totals
    assert sum(totals.values()) >= 60, totals


def test_the_reliability_doc_quotes_the_corpus_as_the_tests_count_it():
    """docs/RELIABILITY.md states the total and each area's figure: a case added, removed or renamed
    away without the doc following fails here (counting the lists alone could not fail)."""
    totals = {area: sum(parts.values()) for area, parts in corpus().items()}
    text = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    assert f"## The corpus: {sum(totals.values())} malformed or hostile inputs" in text
    for area, total in totals.items():
        assert re.search(rf"^\| {DOC_AREA.get(area, area)} \| {total} \|", text, re.MULTILINE), (area, total)


def test_every_file_the_corpus_names_exists():
    for parts in corpus().values():
        for where in parts:
            assert (REPO / where.split()[0]).is_file(), where


if __name__ == "__main__":  # python -m tests.reliability.test_corpus: the figures for docs/RELIABILITY.md
    for area, parts in corpus().items():
        print(f"{area}: {sum(parts.values())}")
        for where, count in parts.items():
            print(f"    {count:3d}  {where}")
    print("total:", sum(sum(p.values()) for p in corpus().values()))
