"""Data quality page through AppTest: metric choice, range, sort, pages, issue links, detail, tags, URL state."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from metrics import registry
from store import gallery_queries as gq
from store import tags
from store.coco_import import import_coco
from tests.conftest import shared
from tests.pages.app_page import card_keys, run_page, stated_count, stored_metric
from tests.pages.browser_slider import browser_range
from tests.store.test_gallery_queries import build_quality_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_quality_project(tmp_path_factory.mktemp("dq"))


def _page(project: Path, **query: str) -> AppTest:
    return run_page(project, "data_quality", **query)


_shown = partial(stated_count, noun="images")
_cards = partial(card_keys, prefix="dq_detail_")


def _values(project: Path, metric: str) -> pd.Series:
    return stored_metric(project, metric, "image")["value"]


def test_default_view_histogram_slider_and_gallery(project):
    at = _page(project)
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Data quality")
    assert _shown(at) == 16
    assert len(_cards(at)) == 12  # the first page (state.DEFAULT_PAGE_SIZE)
    assert at.get("plotly_chart"), "the distribution chart is drawn"
    assert at.slider(key="dq_range").label == "Range of brightness"
    help_text = registry.get("brightness").help_text()
    assert any(help_text in c.value for c in at.caption), "the chosen metric's meaning, range and direction"
    assert at.selectbox(key="dq_metric").help and "Range [0, 1]" in at.selectbox(key="dq_metric").help
    assert at.query_params["metric"] == "brightness"


def test_choose_metric_then_narrow_range_changes_the_gallery(project):
    at = _page(project)
    at.selectbox(key="dq_metric").set_value("contrast").run()
    assert not at.exception, at.exception
    assert at.query_params["metric"] == "contrast"
    assert any(registry.get("contrast").help_text() in c.value for c in at.caption)
    values = _values(project, "contrast").dropna()
    low, high = float(values.quantile(0.25)), float(values.max())
    at.slider(key="dq_range").set_value((low, high)).run()
    expected = int(((values >= low) & (values <= high)).sum())
    assert 0 < expected < 16
    assert _shown(at) == expected and len(_cards(at)) == expected
    assert float(at.query_params["lo"]) == pytest.approx(low, rel=1e-5)


def test_sort_direction_puts_the_extreme_first(project):
    at = _page(project)
    at.radio(key="dq_order").set_value("descending").run()
    assert at.query_params["order"] == "desc"
    top = max(_values(project, "brightness").dropna())
    first_caption = next(c.value for c in at.caption if "brightness = " in c.value)
    assert f"brightness = {top:.4g}" in first_caption
    at.radio(key="dq_order").set_value("ascending").run()
    first_caption = next(c.value for c in at.caption if "brightness = " in c.value)
    assert f"brightness = {min(_values(project, 'brightness').dropna()):.4g}" in first_caption


def test_pages(project):
    """The first page holds 12 cards by default (each card is work for the browser on every visit), the
    default stays out of the URL, and 24 / 48 are a choice away."""
    at = _page(project)
    assert len(_cards(at)) == 12 and "size" not in at.query_params
    at.button(key="dq_next").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="dq_page").value == 2
    assert at.query_params["page"] == "2"
    assert len(_cards(at)) == 4
    at = _page(project, size="24")
    assert len(_cards(at)) == 16 and at.query_params["size"] == "24"


@pytest.mark.parametrize(
    ("issue", "count"),
    [("missing_images", 2), ("exact_duplicate_images", 4)],
)
def test_issue_link_opens_exactly_those_images(project, issue, count):
    at = _page(project, issue=issue)
    assert not at.exception, at.exception
    assert _shown(at) == count and len(_cards(at)) == count
    assert any("Issue: " + issue.replace("_", " ") in m.value for m in at.markdown)
    at.button(key="dq_clear_issue").click().run()
    assert _shown(at) == 16 and "issue" not in at.query_params


def test_missing_image_card_and_detail_dialog(project):
    at = _page(project, issue="missing_images")
    at.button(key="dq_detail_a_101").click().run()
    assert not at.exception, at.exception
    assert at.query_params["detail"] == "a|101"
    assert any("**missing**" in m.value for m in at.markdown)
    metric_table = next(df.value for df in at.dataframe if "direction" in df.value.columns)
    assert {"width", "height"} <= set(metric_table["metric"])  # record metrics exist without the file
    assert (metric_table["range"] != "").all() and (metric_table["meaning"] != "").all()


def test_detail_link_reproduces_the_dialog(project):
    at = _page(project, detail="b|0")
    assert not at.exception, at.exception
    assert any(m.value.startswith("**Objects** (2)") for m in at.markdown)
    partners = next(df.value for df in at.dataframe if "kind" in df.value.columns)
    assert 100 in set(partners["image_id"])  # its exact duplicate


def test_link_with_state_reproduces_the_view(project):
    values = _values(project, "contrast").dropna()
    low, high = float(values.quantile(0.5)), float(values.max())
    at = _page(project, metric="contrast", lo=repr(low), hi=repr(high), sort="brightness", order="desc")
    assert at.selectbox(key="dq_metric").value == "contrast"
    assert at.selectbox(key="dq_sort").value == "brightness"
    assert at.radio(key="dq_order").value == "descending"
    assert at.slider(key="dq_range").value[0] == pytest.approx(low, rel=1e-5)
    assert _shown(at) == int(((values >= low) & (values <= high)).sum())


def test_tag_a_card_tag_all_and_filter_by_tag(project):
    at = _page(project, issue="missing_images")
    at.text_input(key="dq_tag_name").set_value("dq-test").run()
    at.button(key="dq_tag_a_101").click().run()
    assert tags.tags_of(project, "a", 101) == ["dq-test"]
    at.button(key="dq_tag_a_101").click().run()  # toggles off
    assert tags.tags_of(project, "a", 101) == []
    at.button(key="dq_tag_all").click().run()
    assert len(tags.tagged(project, "dq-test")) == 0, "tag all asks first"
    assert any("Tag all 2 images in the current filter with “dq-test”?" in w.value for w in at.warning)
    at.button(key="dq_bulk_confirm").click().run()
    assert set(tags.tagged(project, "dq-test")["image_id"]) == {101}
    at.button(key="dq_clear_issue").click().run()
    at.selectbox(key="dq_tag_filter").set_value("dq-test").run()
    assert _shown(at) == 2
    tags.remove_tags(project, "a", [101], None, "dq-test")
    tags.remove_tags(project, "b", [101], None, "dq-test")


def test_fruits_nuts(tmp_path):
    fruits = shared("fruits_nuts")
    import_coco(fruits / "images", fruits / "annotations.json", tmp_path / "p", dataset="fruits", workers=2)
    at = _page(tmp_path / "p", metric="sharpness", order="desc", size="24")  # all 18 on one page
    assert not at.exception, at.exception
    assert _shown(at) == 18 and len(_cards(at)) == 18
    assert at.get("image"), "thumbnails are shown"
    assert len(list((tmp_path / "p" / "thumbs").glob("*/*.jpg"))) == 18
    legend = next(m.value for m in at.markdown if m.value.startswith("**Classes:**"))
    assert all(name in legend for name in ("date", "fig", "hazelnut"))


@pytest.fixture(scope="module")
def fruits(fruits_project: Path) -> Path:
    return fruits_project


@pytest.mark.parametrize("metric", ["sharpness", "brightness"])
def test_range_slider_keeps_the_real_extremes(fruits, metric):
    """Left handle untouched, right one dragged: the browser rounds both to the step's precision,
    and the item at the real minimum (and, at the right end, at the real maximum) still shows."""
    values = _values(fruits, metric).dropna().sort_values()
    real_min, real_max = float(values.iloc[0]), float(values.iloc[-1])
    at = _page(fruits, metric=metric, sort=metric, order="asc")
    slider = at.slider(key="dq_range")
    middle = float(values.iloc[len(values) // 2])
    low, high = browser_range(slider, float(slider.min), middle)
    at.slider(key="dq_range").set_value((low, high)).run()
    assert not at.exception, at.exception
    expected = int(((values >= real_min) & (values <= high)).sum())
    assert _shown(at) == expected == len(_cards(at))
    first = next(c.value for c in at.caption if f"{metric} = " in c.value)
    assert f"{metric} = {real_min:.4g}" in first, "the extreme item is the first card"
    # Left handle dragged in, right one back at the end: the maximum item is kept.
    slider = at.slider(key="dq_range")
    low, high = browser_range(slider, middle, float(slider.max))
    at.slider(key="dq_range").set_value((low, high)).run()
    assert _shown(at) == int(((values >= low) & (values <= real_max)).sum())
    assert float(at.query_params["hi"]) == real_max


def test_issue_link_opens_on_the_metric_it_counts(fruits):
    """?issue=blurry_images alone (an old link): the chart, the sort and the order follow sharpness."""
    at = _page(fruits, issue="low_information_images")
    assert not at.exception, at.exception
    assert at.selectbox(key="dq_metric").value == "entropy"
    assert at.selectbox(key="dq_sort").value == "entropy"
    assert at.radio(key="dq_order").value == "ascending"  # higher is better: the worst first
    at = _page(fruits, issue="blurry_images")
    assert at.selectbox(key="dq_metric").value == "sharpness"
    assert at.selectbox(key="dq_sort").value == "sharpness"


@pytest.mark.parametrize(
    ("metric", "shaded"),
    [("sharpness", {"low"}), ("dark_score", {"high"}), ("aspect_ratio", {"low", "high"})],
)
def test_outlier_shading_follows_the_metric_direction(metric, shaded):
    """Red/orange bands only on the end that is a problem: a very sharp image is not a severe outlier."""
    from pages.gallery import distribution_figure

    histogram = pd.DataFrame(
        {"dataset": ["a"] * 3, "bin_low": [0.0, 1.0, 2.0], "bin_high": [1.0, 2.0, 3.0], "count": [1, 5, 1]}
    )
    bounds = {"min": -10.0, "max": 10.0, "q1": -1.0, "q3": 1.0, "count": 7}
    bounds.update(moderate_low=-4.0, moderate_high=4.0, severe_low=-6.0, severe_high=6.0)
    figure = distribution_figure(histogram, bounds, metric)
    bands = [s for s in figure.layout.shapes if s.type == "rect" and s.fillcolor != "rgba(0,0,0,0)"]
    sides = {"low" if s.x1 <= 0 else "high" for s in bands}
    assert sides == shaded
    assert len(bands) == 2 * len(shaded)  # moderate and severe on each shaded end


def test_untag_all_in_filter_rename_and_delete_tags(project):
    tags.add_tags(project, "a", [0, 1, 2], None, "bulk")
    at = _page(project, issue="missing_images")  # images a/101 and b/101
    at.text_input(key="dq_tag_name").set_value("bulk").run()
    tags.add_tags(project, "a", [101], None, "bulk")
    at.button(key="dq_untag_all").click().run()
    assert any("Remove the tag from all 2 images in the current filter" in w.value for w in at.warning)
    at.button(key="dq_bulk_cancel").click().run()
    assert not at.warning and tags.tags_of(project, "a", 101) == ["bulk"]
    at.button(key="dq_untag_all").click().run()
    at.button(key="dq_bulk_confirm").click().run()
    assert not at.exception, at.exception
    assert tags.tags_of(project, "a", 101) == [] and len(tags.tagged(project, "bulk")) == 3  # others kept

    at.selectbox(key="dq_manage_tag").set_value("bulk").run()
    at.text_input(key="dq_manage_new").set_value("bulk2").run()
    at.button(key="dq_manage_rename").click().run()
    assert not at.exception, at.exception
    assert "bulk" not in tags.all_tags(project) and len(tags.tagged(project, "bulk2")) == 3
    assert any("Renamed “bulk” to “bulk2” on 3 items" in s.value for s in at.success)
    at.selectbox(key="dq_manage_tag").set_value("bulk2").run()
    at.button(key="dq_manage_delete").click().run()
    assert any("Delete “bulk2” from all 3 items" in w.value for w in at.warning)
    at.button(key="dq_manage_confirm").click().run()
    assert not at.exception, at.exception
    assert "bulk2" not in tags.all_tags(project)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fruits_nuts (date 1, fig 2, hazelnut 3) beside generated squares (red 1, orange 2): ids collide."""
    from tests.conftest import write_small_coco

    base = tmp_path_factory.mktemp("dq_two")
    data = shared("fruits_nuts")
    import_coco(data / "images", data / "annotations.json", base / "p", dataset="fruits", workers=1)
    images, ann = write_small_coco(base / "sq", n_images=3)
    long_name = "batch_12/a_really_long_descriptive_prefix_000006.jpg"
    (images / "batch_12").mkdir()
    (images / "img_0.jpg").rename(images / long_name)
    ann.write_text(ann.read_text().replace('"img_0.jpg"', f'"{long_name}"'))
    import_coco(images, ann, base / "p", dataset="squares", workers=1)
    return base / "p"


def test_class_colours_distinct_across_the_classes_shown(two_datasets):
    from store import thumbnails
    from store.queries import ProjectReader

    reader = ProjectReader(two_datasets)
    ids = gq.colour_ids(reader)
    assert sorted(ids) == ["date", "fig", "hazelnut", "orange", "red"]
    colours = {name: thumbnails.colour_hex(i) for name, i in ids.items()}
    assert len(set(colours.values())) == 5, colours  # date/red and fig/orange shared one before
    objects = gq.image_objects(reader, [("fruits", 0), ("squares", 1)])
    drawn = {r.category: thumbnails.colour_hex(int(r.colour_id)) for r in objects.itertuples()}
    assert all(drawn[name] == colours[name] for name in drawn)
    assert len({thumbnails.class_colour(i) for i in range(80)}) == 80  # beyond the palette too

    at = _page(two_datasets, size="48")
    assert not at.exception, at.exception
    legend = next(m.value for m in at.markdown if m.value.startswith("**Classes:**"))
    chips = dict(re.findall(r"background:(#[0-9a-f]{6});[^>]*></span>([^<]+)</span>", legend))
    assert {name: colour for colour, name in chips.items()} == colours


def test_cards_name_their_dataset_and_keep_the_file_name_start(two_datasets):
    at = _page(two_datasets, size="48", metric="brightness")
    captions = [c.value for c in at.caption if "brightness = " in c.value]
    assert len(captions) == 21
    assert sum("fruits · brightness" in c for c in captions) == 18
    assert sum("squares · brightness" in c for c in captions) == 3
    long = next(c for c in captions if "squares" in c and "batch_12" in c)
    assert long.startswith("**batch_12/a_really") and "…" in long and "000006.jpg**" in long
    at.session_state["datasets"] = ["fruits"]
    at.run()
    assert not any(" · brightness" in c.value for c in at.caption)


def test_sample_view_steps_through_the_gallery_order(project):
    """Opened from a card, the sample view says where the image stands in the gallery's order and
    steps to the previous / next image in that order (the page's filter and sort)."""
    from store.queries import ProjectReader

    at = _page(project, sort="brightness", order="desc")
    f = gq.GalleryFilter(level="image", datasets=["a", "b"])
    order = gq.page_items(ProjectReader(project), f, "brightness", True, 0, 16)
    keys = [f"{r.dataset}|{r.image_id}" for r in order.itertuples()]
    at.button(key=f"dq_detail_{keys[0].replace('|', '_')}").click().run()
    assert not at.exception, at.exception
    assert at.query_params["detail"] == keys[0]
    assert any("1 of 16 in the gallery by brightness (descending)" in m.value for m in at.markdown)
    assert at.button(key="sample_previous").disabled and not at.button(key="sample_next").disabled
    at.button(key="sample_next").click().run()
    assert not at.exception, at.exception
    assert at.query_params["detail"] == keys[1]
    assert any("2 of 16 in the gallery" in m.value for m in at.markdown)
    at.button(key="sample_previous").click().run()
    assert at.query_params["detail"] == keys[0]


def test_save_a_view_list_it_and_reopen_it(project):
    """Saved views: the page's URL state under a name, listed (for every session) as a link that
    reopens it; the link's parameters reproduce the view; a view can be deleted."""
    from urllib.parse import parse_qs

    from store import views

    at = _page(project, metric="contrast", sort="brightness", order="desc", issue="exact_duplicate_images")
    at.text_input(key="dq_view_name").set_value("dupes by brightness").run()
    at.button(key="dq_view_save").click().run()
    assert not at.exception, at.exception
    (saved,) = [v for v in views.list_views(project) if v["name"] == "dupes by brightness"]
    assert saved["page"] == "pages/data_quality.py"
    assert {k: saved["query"][k] for k in ("metric", "sort", "order", "issue")} == {
        "metric": ["contrast"], "sort": ["brightness"], "order": ["desc"], "issue": ["exact_duplicate_images"],
    }  # fmt: skip
    at.run()
    link = next(p for p in at.get("page_link") if p.proto.label == "dupes by brightness")
    query = {k: v[0] for k, v in parse_qs(link.proto.query_string).items()}
    again = _page(project, **{k: v for k, v in query.items() if k != "project"})
    assert (
        again.selectbox(key="dq_metric").value == "contrast"
        and again.radio(key="dq_order").value == "descending"
    )
    assert _shown(again) == 4
    again.button(key="dq_view_delete_dupes by brightness").click().run()
    assert not any(v["name"] == "dupes by brightness" for v in views.list_views(project))
