"""The likely-mislabelled gallery on the Label quality page: cards ordered by the label scores, given and
suggested class, one-click tagging, open in context, and mean annotation quality on the statistics table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.mislabelled import DEFAULT_TAG, PAGE_SIZE
from store import tags
from tests.conftest import write_small_coco
from tests.pages.app_page import run_page
from tests.store.test_embedding_store import synthetic_embedded_project


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    return synthetic_embedded_project(tmp_path_factory.mktemp("mislabelled"), confused=5)


def _page(project: Path, **query: str) -> AppTest:
    return run_page(project, "label_quality", **query)


def _card_keys(at: AppTest) -> list[tuple[int, int]]:
    """(image_id, object_id) of the cards in page order (five per row; AppTest lists columns first)."""
    keys = [
        b.key.removeprefix("ml_tag_fruits_").split("_")
        for b in at.button
        if b.key and b.key.startswith("ml_tag_")
    ]
    return [(int(i), int(o)) for i, o in keys]


def test_confused_objects_lead_with_their_suggested_class(embedded) -> None:
    project, confused = embedded
    at = _page(project)
    assert not at.exception, at.exception
    assert any(s.value == "Likely mislabelled" for s in at.subheader)
    assert any(m.value.startswith("**165 objects** scored") for m in at.markdown)
    cards = _card_keys(at)
    assert len(cards) == PAGE_SIZE
    suggestions = pd.read_parquet(
        project / "datasets" / "fruits" / "embeddings" / "label_suggestions.parquet"
    )
    worst = suggestions.sort_values("label_confidence").head(PAGE_SIZE)
    assert set(cards) == set(zip(worst["image_id"], worst["object_id"], strict=True))
    assert set(confused) <= set(cards)  # the objects whose vectors look like another class are on page one
    captions = [c.value for c in at.caption if "confidence " in c.value and "quality " in c.value]
    assert len(captions) == PAGE_SIZE
    assert sum("→ **" in c for c in captions) >= len(confused)  # given → suggested class shown
    at.toggle(key="ml_disagree").set_value(True).run()
    shown = next(m.value for m in at.markdown if "objects** scored" in m.value)
    assert shown.startswith(f"**{int(suggestions['disagrees'].sum())} objects** scored")
    assert set(_card_keys(at)) >= set(confused)
    at.radio(key="ml_sort").set_value("annotation_quality").run()
    assert not at.exception, at.exception


def test_one_click_tag_and_open_in_context(embedded) -> None:
    project, confused = embedded
    at = _page(project)
    image_id, object_id = confused[0]
    at.button(key=f"ml_tag_fruits_{image_id}_{object_id}").click().run()
    assert tags.tags_of(project, "fruits", image_id, object_id) == [DEFAULT_TAG]
    button = at.button(key=f"ml_tag_fruits_{image_id}_{object_id}")
    assert button.label == DEFAULT_TAG and button.proto.icon == ":material/check:"
    at.button(key=f"ml_tag_fruits_{image_id}_{object_id}").click().run()  # a second click removes it
    assert tags.tags_of(project, "fruits", image_id, object_id) == []
    at.button(key=f"ml_detail_fruits_{image_id}_{object_id}").click().run()
    assert at.query_params["detail"] == f"fruits|{image_id}" and at.query_params["object"] == str(object_id)
    assert not at.exception, at.exception


def test_statistics_table_shows_mean_annotation_quality(embedded) -> None:
    project, _ = embedded
    at = _page(project)
    stats = at.dataframe[-1].value.set_index("dataset")
    quality = pd.read_parquet(
        project / "datasets" / "fruits" / "metrics" / "object__annotation_quality.parquet"
    )
    assert stats.loc["fruits", "annotation_quality"] == pytest.approx(quality["value"].mean())
    assert "label_confidence" in stats.columns


def test_without_embeddings_the_section_names_the_command(tmp_path: Path) -> None:
    from store.coco_import import import_coco

    images, annotations = write_small_coco(tmp_path / "src", n_images=2)
    import_coco(images, annotations, tmp_path / "p", dataset="tiny")
    at = _page(tmp_path / "p")
    assert not at.exception, at.exception
    command = f"cocolens metrics --project {(tmp_path / 'p').resolve()} --embeddings"
    assert any(command in i.value for i in at.info)
    assert not _card_keys(at)
