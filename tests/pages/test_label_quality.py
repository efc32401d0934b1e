"""Label quality page through AppTest: class balance, object metric range, crop gallery, issues, detail, stats."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from metrics import registry
from store import tags
from store.coco_import import import_coco
from tests.conftest import shared
from tests.pages.app_page import card_keys, run_page, stated_count, stored_metric
from tests.pages.browser_slider import browser_range
from tests.store.test_gallery_queries import build_quality_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_quality_project(tmp_path_factory.mktemp("lq"))


def _page(project: Path, **query: str) -> AppTest:
    return run_page(project, "label_quality", **query)


_shown = partial(stated_count, noun="objects")
_crops = partial(card_keys, prefix="lq_detail_")
_values = partial(stored_metric, level="object")


def test_class_distribution_imbalance_and_default_crop_gallery(project):
    at = _page(project)
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Label quality")
    imbalance = at.dataframe[0].value.set_index("dataset")
    assert imbalance.loc["b", "classes_under_10"] == 3 and imbalance.loc["b", "smallest_class"] == "rare"
    assert imbalance.loc["b", "largest_smallest_ratio"] == 8.0  # 8 orange objects vs 1 rare
    assert _shown(at) == 33 and len(_crops(at)) == 12  # the first page (state.DEFAULT_PAGE_SIZE)
    # sorted by the smallest relative area first: the 1-px objects lead
    first = next(c.value for c in at.caption if "object_area_relative = " in c.value)
    smallest = _values(project, "object_area_relative")["value"].min()
    assert f"object_area_relative = {smallest:.4g}" in first
    at.toggle(key="lq_logc").set_value(True).run()
    assert at.query_params["logc"] == "1"
    assert at.get("plotly_chart")[0].proto.spec, "class chart drawn"


def test_object_metric_range_and_sort(project):
    at = _page(project)
    at.selectbox(key="lq_metric").set_value("annotation_duplicate_iou").run()
    assert any(registry.get("annotation_duplicate_iou").help_text() in c.value for c in at.caption)
    assert at.radio(key="lq_order").value == "descending"  # lower is better: worst (most overlapping) first
    values = _values(project, "object_area")["value"]
    at.selectbox(key="lq_metric").set_value("object_area").run()
    low, high = float(values.quantile(0.5)), float(values.max())
    at.slider(key="lq_range").set_value((low, high)).run()
    assert _shown(at) == int(((values >= low) & (values <= high)).sum())
    at.radio(key="lq_order").set_value("descending").run()
    first = next(c.value for c in at.caption if "object_area = " in c.value)
    assert f"object_area = {values.max():.4g}" in first


def test_class_filter(project):
    at = _page(project)
    at.multiselect(key="lq_classes").set_value(["b|3"]).run()
    assert _shown(at) == 1 and at.query_params["classes"] == "b|3"


@pytest.mark.parametrize(("issue", "count"), [("tiny_objects", 2), ("classes_under_10_objects", 33)])
def test_issue_links(project, issue, count):
    at = _page(project, issue=issue)
    assert not at.exception, at.exception
    assert _shown(at) == count
    assert any("Issue: " + issue.replace("_", " ") in m.value for m in at.markdown)


def test_crop_opens_its_image_in_context(project):
    at = _page(project, issue="tiny_objects")
    at.button(key="lq_detail_a_1_1002").click().run()
    assert not at.exception, at.exception
    assert at.query_params["detail"] == "a|1" and at.query_params["object"] == "1002"
    assert any(m.value.startswith("**Object 1002**") for m in at.markdown)
    object_metrics = next(df.value for df in at.dataframe if "direction" in df.value.columns)
    assert "object_area_relative" in set(object_metrics["metric"])


def test_per_dataset_statistics_table(project):
    at = _page(project)
    stats = at.dataframe[-1].value.set_index("dataset")
    expected = _values(project, "object_area").groupby("dataset")["value"].mean()
    assert stats.loc["a", "object_area"] == pytest.approx(expected["a"])
    assert stats.loc["b", "objects"] == 17 and stats.loc["a", "images"] == 8


def test_tag_an_object(project):
    at = _page(project, issue="tiny_objects")
    at.button(key="lq_tag_b_1_1002").click().run()
    assert tags.tags_of(project, "b", 1, 1002) == ["review"]
    tags.remove_tags(project, "b", [1], [1002], "review")


def test_fruits_nuts(tmp_path):
    fruits = shared("fruits_nuts")
    import_coco(fruits / "images", fruits / "annotations.json", tmp_path / "p", dataset="fruits", workers=2)
    at = _page(tmp_path / "p")
    assert not at.exception, at.exception
    imbalance = at.dataframe[0].value.iloc[0]
    assert imbalance["classes_used"] == 3 and imbalance["classes_under_10"] == 0
    # 12 crops on the first page (state.DEFAULT_PAGE_SIZE: cheaper for the browser than 24)
    assert _shown(at) == 165 and len(_crops(at)) == 12
    assert len(at.get("image")) == 12
    stats = at.dataframe[-1].value.iloc[0]
    assert stats["objects"] == 165 and stats["objects_per_image"] == pytest.approx(165 / 18, abs=0.01)


def test_object_range_slider_keeps_the_real_minimum(tmp_path):
    """Object metrics share the slider: the browser-rounded left end still keeps the smallest object."""
    fruits = shared("fruits_nuts")
    root = tmp_path / "p"
    import_coco(fruits / "images", fruits / "annotations.json", root, dataset="fruits", workers=1)
    metric = "object_aspect_ratio"
    values = _values(root, metric)["value"].dropna().sort_values()
    at = _page(root, metric=metric, sort=metric, order="asc")
    slider = at.slider(key="lq_range")
    middle = float(values.iloc[len(values) // 2])
    low, high = browser_range(slider, float(slider.min), middle)
    at.slider(key="lq_range").set_value((low, high)).run()
    assert not at.exception, at.exception
    assert _shown(at) == int((values <= high).sum())
    first = next(c.value for c in at.caption if f"{metric} = " in c.value)
    assert f"{metric} = {values.iloc[0]:.4g}" in first
