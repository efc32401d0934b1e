"""The app shell and the Summary page, headless through AppTest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from metrics import registry
from tests.conftest import REPO, cli_import, write_small_coco


@pytest.fixture(scope="module")
def project(small_project: Path) -> Path:
    return small_project


def _app(project: Path) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    return at


def test_summary_shows_counts_issues_and_metric_table(project):
    at = _app(project).run()
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Summary")
    counts = at.dataframe[0].value
    assert counts.iloc[0]["images"] == 5 and counts.iloc[0]["objects"] == 10
    metric_labels = {m.label for m in at.metric}
    assert {"Exact duplicate images", "Missing images", "Dark images"} <= metric_labels
    table = at.dataframe[1].value
    brightness = table[table["metric"] == "brightness"].iloc[0]
    assert brightness["count"] == 5 and brightness["level"] == "image"
    assert (
        brightness["direction"]
        == registry.get("brightness").direction_text
        == "neither end is better: look at the outliers"
    )
    assert table[table["metric"] == "object_area"].iloc[0]["count"] == 10


def test_empty_project_says_how_to_import(tmp_path):
    at = _app(tmp_path / "nothing").run()
    assert not at.exception
    assert any("No datasets" in w.value for w in at.sidebar.warning)


def test_sidebar_dataset_picker_limits_the_summary(tmp_path):
    project = tmp_path / "two"
    for name, n_images in (("small", 5), ("other", 3)):
        images, ann = write_small_coco(tmp_path / name, n_images=n_images, seed=n_images)
        cli_import(images, ann, project, name)
    at = _app(project).run()
    assert len(at.dataframe[0].value) == 2
    at.sidebar.multiselect[0].set_value(["other"]).run()
    assert not at.exception
    counts = at.dataframe[0].value
    assert counts["dataset"].tolist() == ["other"] and counts.iloc[0]["images"] == 3


def test_summary_page_reads_the_prewarmed_summaries_with_the_same_figures(project, monkeypatch):
    """`cocolens import` stored the page's summaries: a fresh server draws them without scanning."""
    import streamlit as st

    from store import page_summaries
    from store.queries import ProjectReader
    from store.report import issue_counts

    reader = ProjectReader(project)
    expected = reader.metric_summary(["small"])  # the uncached query
    expected_issues = issue_counts(reader, ["small"])

    def fail(*args):
        raise AssertionError("the Summary page recomputed a stored summary")

    for name, (_, datasets_of) in list(page_summaries.SUMMARIES.items()):
        monkeypatch.setitem(page_summaries.SUMMARIES, name, (fail, datasets_of))
    st.cache_data.clear()  # a new server process: nothing in memory
    at = _app(project).run()
    assert not at.exception, at.exception
    table = at.dataframe[1].value
    shown = [c for c in expected.columns if c in table.columns]
    assert {"count", "mean", "median", "min", "max", "moderate_outliers", "severe_outliers"} <= set(shown)
    pd.testing.assert_frame_equal(table[shown], expected[shown], check_dtype=False)
    assert {m.label: m.value for m in at.metric}["Dark images"] == f"{expected_issues['dark_images']:,}"


def test_issue_links_open_the_gallery_sorted_by_the_metric_counted(tmp_path):
    """One definition per issue: the help states the rule counted, the metric's own description adds
    no other line, and the link opens the gallery on that metric, most extreme first."""
    from urllib.parse import parse_qs

    import cv2
    import numpy as np

    from metrics import registry
    from store import issue_catalogue
    from store.coco_import import import_coco

    images, ann = write_small_coco(tmp_path / "src", n_images=4)
    cv2.imwrite(str(images / "img_0.jpg"), np.full((120, 160, 3), 128, np.uint8))  # flat: blurry
    import_coco(images, ann, tmp_path / "p", dataset="small", workers=1)
    at = _app(tmp_path / "p").run()
    assert not at.exception, at.exception
    helps = {m.label: m.help for m in at.metric}
    assert helps["Blurry images"].startswith("Counted: `sharpness` below 0.1.")
    assert "blurry" not in registry.get("sharpness").description.lower()
    links = [parse_qs(link.proto.query_string) for link in at.get("page_link")]
    by_issue = {q["issue"][0]: q for q in links}
    checked = [issue for issue in by_issue if issue_catalogue.get(issue).rule == "metric"]
    assert "blurry_images" in checked
    for issue in checked:
        metric = issue_catalogue.get(issue).metric
        order = "asc" if issue_catalogue.get(issue).direction == "below" else "desc"
        assert by_issue[issue] == {"issue": [issue], "metric": [metric], "sort": [metric], "order": [order]}
