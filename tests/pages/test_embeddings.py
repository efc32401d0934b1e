"""Embeddings page through AppTest: the map (classes, a metric, images), more like this from the URL and from
a card, the selection-to-rows mapping, and the message with the command when nothing is embedded yet."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.embedding_map import map_figure, parse_like, selected_rows
from store import embedding_store as es
from store import thumbnails
from store.coco_import import import_coco
from tests.conftest import REPO, write_small_coco
from tests.store.test_embedding_store import synthetic_embedded_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_embedded_project(tmp_path_factory.mktemp("embpage"))[0]


def _page(project: Path, **query: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = str(project)
    at.switch_page("pages/embeddings.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _traces(at: AppTest) -> list[dict]:
    charts = at.get("plotly_chart")
    assert len(charts) == 1, "one map"
    return json.loads(charts[0].proto.spec)["data"]


def _array(value: list | dict) -> np.ndarray:
    """A trace array from the chart's JSON: plotly sends numpy arrays as base64 (``bdata``)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _similarities(at: AppTest) -> list[float]:
    return [float(c.value.rsplit(" ", 1)[1]) for c in at.caption if "similarity " in c.value]


def test_object_map_coloured_by_class_then_by_a_metric(project: Path) -> None:
    at = _page(project)
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Embeddings")
    traces = _traces(at)
    assert sorted(t["name"] for t in traces) == ["date", "fig", "hazelnut"]
    colours = {t["name"]: t["marker"]["color"] for t in traces}  # the class colours of the pictures
    assert colours == {
        name: thumbnails.colour_hex(i)
        for i, name in enumerate(["date", "fig", "hazelnut"])  # by name
    }
    assert sum(len(_array(t["x"])) for t in traces) == 165 and all(t["type"] == "scattergl" for t in traces)
    assert len(list((project / "datasets" / "fruits" / "embeddings").glob("map_object_pca_*.parquet"))) == 1
    at.selectbox(key="emb_colour").set_value("annotation_quality").run()
    assert not at.exception, at.exception
    (trace,) = _traces(at)  # no missing values: a single trace on a colour scale
    stored = pd.read_parquet(
        project / "datasets" / "fruits" / "metrics" / "object__annotation_quality.parquet"
    )
    quality = np.sort(stored["value"].to_numpy())
    np.testing.assert_allclose(np.sort(_array(trace["marker"]["color"])), quality)
    assert at.query_params["colour"] == "annotation_quality"


def test_image_map_and_methods(project: Path) -> None:
    at = _page(project, level="image", map="tsne")
    assert not at.exception, at.exception
    assert at.radio(key="emb_level").value == "image" and at.selectbox(key="emb_method").value == "tsne"
    assert "class" not in at.selectbox(key="emb_colour").options
    (trace,) = _traces(at)  # coloured by dataset: one dataset
    assert trace["name"] == "fruits" and len(_array(trace["x"])) == 18
    assert list((project / "datasets" / "fruits" / "embeddings").glob("map_image_tsne_*.parquet"))


def test_more_like_this_from_the_url_and_from_a_card(project: Path) -> None:
    vectors, keys = es.load_vectors(project, "fruits", "object")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # stored unit length
    image_id, object_id = int(keys.image_id[10]), int(keys.object_id[10])
    at = _page(project, like=f"fruits|{image_id}|{object_id}")
    assert not at.exception, at.exception
    shown = _similarities(at)
    expected = np.sort(np.delete(np.asarray(vectors) @ np.asarray(vectors[10]), 10))[::-1][:12]
    # cards fill rows left to right; AppTest lists them column by column
    np.testing.assert_allclose(sorted(shown, reverse=True), np.round(expected, 3), atol=1e-3)
    assert any(m.value.startswith("**12 nearest to object") for m in at.markdown)
    like_buttons = [b for b in at.button if b.key and b.key.startswith("emb_like_like_")]
    assert len(like_buttons) == 12
    first = like_buttons[0].key.removeprefix("emb_like_like_").split("_")
    like_buttons[0].click().run()
    assert at.query_params["like"] == f"fruits|{first[1]}|{first[2]}"
    assert int(at.session_state["emb_like_image"]) == int(first[1])
    # a whole image, picked with the widgets
    at.text_input(key="emb_like_object").set_value("").run()
    at.number_input(key="emb_like_image").set_value(5).run()
    at.button(key="emb_like_find").click().run()
    assert at.query_params["like"] == "fruits|5"
    assert len(_similarities(at)) == 12
    at = _page(project, like="fruits|5|999999")
    assert any("No object embedding" in w.value for w in at.warning)


def test_selected_rows_follow_traces() -> None:
    trace_rows = [np.array([4, 7, 9]), np.array([0, 1])]
    event = {
        "selection": {
            "points": [
                {"curve_number": 0, "point_index": 2},
                {"curve_number": 1, "point_index": 0},
                {"curve_number": 5, "point_index": 0},
            ]
        }
    }
    assert selected_rows(event, trace_rows).tolist() == [0, 9]
    assert selected_rows({"selection": {"points": []}}, trace_rows).tolist() == []
    assert parse_like("a|1|2") == ("a", 1, 2) and parse_like("a|1") == ("a", 1, None)
    assert parse_like("a|x") is None and parse_like(None) is None


def test_map_figure_greys_missing_metric_values() -> None:
    points = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "image_id": [1, 2, 3],
            "object_id": pd.array([None] * 3, "Int64"),
            "x": [0.0, 1.0, 2.0],
            "y": [0.0, 1.0, 2.0],
        }
    )
    figure, rows = map_figure(points, pd.Series([0.5, np.nan, 0.1]), "m")
    assert [r.tolist() for r in rows] == [[0, 2], [1]]
    assert figure.data[1].name == "no value"


def test_without_embeddings_the_page_names_the_command(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=2)
    import_coco(images, annotations, tmp_path / "p", dataset="tiny")
    at = _page(tmp_path / "p")
    assert not at.exception, at.exception
    assert any("No embeddings yet for **tiny**" in w.value for w in at.warning)
    assert at.code[0].value == f"cocolens metrics --project {(tmp_path / 'p').resolve()} --embeddings"
    assert at.button(key="action_start_metrics").label == "Compute embeddings now"
    assert not at.get("plotly_chart")


def _selection_app(project_root: str, level: str) -> None:
    import streamlit as st

    from pages.embedding_cards import selection_section
    from store.queries import ProjectReader

    reader = ProjectReader(project_root)
    st.session_state["project"] = project_root
    if level == "object":
        selected = reader.df("SELECT dataset, image_id, object_id FROM objects ORDER BY 1, 2, 3 LIMIT 60")
    else:
        selected = reader.df("SELECT dataset, image_id, NULL::BIGINT AS object_id FROM images ORDER BY 1, 2")
    selection_section(reader, selected, level)


def test_a_map_selection_pages_through_every_item_and_tags_them_all(project: Path) -> None:
    """60 objects lassoed: 3 pages of 24 / 24 / 12 cards, and one confirmed click tags all 60."""
    from store import tags

    at = AppTest.from_function(_selection_app, args=(str(project), "object"), default_timeout=120).run()
    assert not at.exception, at.exception
    details = lambda: [b for b in at.button if b.key and b.key.startswith("emb_sel_detail_")]  # noqa: E731
    assert len(details()) == 24 and any("60 objects selected" in m.value for m in at.markdown)
    seen = {b.key for b in details()}
    at.number_input(key="emb_sel_page").set_value(3).run()
    assert len(details()) == 12 and not seen & {b.key for b in details()}
    at.text_input(key="emb_sel_tag").set_value("lassoed").run()
    at.button(key="emb_sel_tag_all").click().run()
    assert any("Tag all 60 selected objects with “lassoed”?" in w.value for w in at.warning)
    at.button(key="emb_sel_confirm").click().run()
    assert not at.exception, at.exception
    tagged = tags.tagged(project, "lassoed")
    assert len(tagged) == 60 and tagged["object_id"].notna().all()
    tags.delete_tag(project, "lassoed")


def test_save_a_view_of_the_map_and_reopen_it(project: Path) -> None:
    """Saved views on the Embeddings page: level, projection, colour and the "more like this" anchor."""
    from store import views

    at = _page(project, level="image", like="fruits|3")
    assert not at.exception, at.exception
    metric = "area"  # an image metric (the default colour, dataset, is not written to the URL)
    at.selectbox(key="emb_colour").set_value(metric).run()
    at.text_input(key="emb_view_name").set_value("images by area").run()
    at.button(key="emb_view_save").click().run()
    assert not at.exception, at.exception
    (saved,) = [v for v in views.list_views(project) if v["name"] == "images by area"]
    assert saved["page"] == "pages/embeddings.py"
    assert {k: saved["query"][k] for k in ("level", "colour", "like")} == {
        "level": ["image"], "colour": [metric], "like": ["fruits|3"]
    }  # fmt: skip
    again = _page(project, **{k: v[0] for k, v in saved["query"].items()})
    assert not again.exception, again.exception
    assert again.radio(key="emb_level").value == "image" and again.selectbox(key="emb_colour").value == metric
    assert any(p.proto.label == "images by area" for p in again.get("page_link"))
    views.delete_view(project, "images by area")
