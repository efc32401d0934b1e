"""Compare page on TACO official vs unofficial (annotations only, every image missing), through AppTest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from store.coco_import import import_coco
from tests.conftest import REPO, shared, write_small_coco


@pytest.fixture(scope="module")
def taco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = shared("taco")
    base = tmp_path_factory.mktemp("compare")
    empty_images = base / "no_images"
    empty_images.mkdir()
    root = base / "project"
    import_coco(empty_images, folder / "annotations.json", root, dataset="official", workers=1)
    import_coco(empty_images, folder / "annotations_unofficial.json", root, dataset="unofficial", workers=1)
    return root


def _page(project: Path, **query: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "compare.py"), default_timeout=120)
    at.session_state["project"] = str(project)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_taco_official_vs_unofficial_ranks_object_metrics(taco: Path) -> None:
    at = _page(taco)
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("metric")
    assert {"object_area", "object_area_relative", "border_closeness"} <= set(table.index)
    assert set(table["level"]) == {"image", "object"}
    assert table["ks"].between(0, 1).all()
    assert list(table["ks"]) == sorted(table["ks"], reverse=True)  # ranked, most different first
    rel = table.loc["object_area_relative"]
    assert rel["n_a"] == 4784 and 0.15 < rel["ks"] < 0.25 and rel["p_value"] < 1e-50
    assert rel["mean_a"] < rel["mean_b"]  # crowd-sourced photos frame their litter larger
    assert table.loc["area", "ks"] > 0.3  # image sizes differ most (different cameras)
    assert table.loc["annotation_duplicate_iou", "ks"] < 0.05
    assert "Range" in table.loc["object_area", "meaning"]  # every metric carries its description
    # The 4 most different distributions (compare.DEFAULT_CHARTS: twelve Plotly charts cost chromium
    # about 1.5 CPU-s more per visit) + class shares; the default stays out of the URL.
    assert len(at.get("plotly_chart")) == 4 + 1
    assert at.number_input(key="cmp_top").value == 4 and "cmp_top" not in at.query_params
    assert at.query_params["cmp_a"] == "official" and at.query_params["cmp_b"] == "unofficial"
    at.number_input(key="cmp_top").set_value(12).run()  # more on request, up to 60
    assert len(at.get("plotly_chart")) == 12 + 1 and at.query_params["cmp_top"] == "12"


def test_level_and_order_come_from_the_url(taco: Path) -> None:
    at = _page(taco, cmp_a="unofficial", cmp_b="official", cmp_level="object", cmp_top="3")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["level"]) == {"object"}
    assert table.set_index("metric").loc["object_area_relative", "n_a"] == 8319  # A is now the crowd split
    assert len(at.get("plotly_chart")) == 3 + 1


def test_identical_datasets_have_ks_zero_and_one_dataset_says_why(tmp_path: Path) -> None:
    images, ann = write_small_coco(tmp_path / "src", n_images=3)
    root = tmp_path / "p"
    import_coco(images, ann, root, dataset="one", workers=1)
    at = _page(root)
    assert not at.exception and "two datasets" in at.info[0].value
    import_coco(images, ann, root, dataset="two", workers=1)
    at = _page(root)
    assert not at.exception, at.exception
    assert (at.dataframe[0].value["ks"] == 0).all()


def test_the_stored_comparison_is_drawn_without_sampling_again(tmp_path: Path, monkeypatch) -> None:
    """Import stored the default pair's ranking and histograms: a fresh server draws the same page from them."""
    import streamlit as st

    from store import page_summaries

    for name, seed in (("one", 1), ("two", 2)):
        images, ann = write_small_coco(tmp_path / name, n_images=4, seed=seed)
        import_coco(images, ann, tmp_path / "p", dataset=name, workers=1)
    st.cache_data.clear()
    computed = _page(tmp_path / "p")
    assert not computed.exception, computed.exception

    def fail(*args: object) -> None:
        raise AssertionError("the Compare page sampled and ranked again")

    monkeypatch.setitem(page_summaries.SUMMARIES, "comparison", (fail, lambda args: [args[0], args[1]]))
    st.cache_data.clear()  # a new server process
    stored = _page(tmp_path / "p")
    assert not stored.exception, stored.exception
    pd.testing.assert_frame_equal(stored.dataframe[0].value, computed.dataframe[0].value)
    charts = [chart.proto.spec for chart in stored.get("plotly_chart")]
    assert charts == [chart.proto.spec for chart in computed.get("plotly_chart")]
    assert len(charts) == min(4, len(stored.dataframe[0].value)) + 1
