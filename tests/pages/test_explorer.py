"""Prediction explorer through AppTest on the demo project: galleries, filters, sort, tagging."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from store import tags
from tests.pages.app_page import run_page
from tests.pages.demo_project import demo_project


def _page(**query: str) -> AppTest:
    return run_page(demo_project(), "explorer", via_app=False, timeout=180, **query)


def _card_captions(at: AppTest) -> list[str]:
    """Card captions in gallery order (the tree lists them column by column: cards k, k+4, … in column k)."""
    found = [c.value for c in at.caption if "  \n" in c.value and " = " in c.value.split("  \n")[-1]]
    n, columns = len(found), 4
    ordered: list[str] = [""] * n
    position = 0
    for column in range(columns):
        for index in range(column, n, columns):
            ordered[index] = found[position]
            position += 1
    return ordered


def test_false_positives_filtered_by_reason_and_class() -> None:
    at = _page(model="demo_model_crowd")
    assert not at.exception, at.exception
    assert at.radio(key="px_view").value == "fp" and len(at.get("image")) > 0
    at.multiselect(key="px_reasons_fp").set_value(["class_confusion"]).run()
    assert not at.exception, at.exception
    captions = _card_captions(at)
    assert captions and all(c.startswith("class confusion: overlaps a '") for c in captions)
    assert at.query_params["why"] == "class_confusion"
    at.multiselect(key="px_classes").set_value([1]).run()
    assert not at.exception, at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]
    assert cards and all(c.startswith("**circle**") for c in cards)


def test_missed_labels_sorted_by_an_object_metric() -> None:
    at = _page(model="demo_model_crowd", view="fn", sort="object_area", order="asc")
    assert not at.exception, at.exception
    values = [float(c.split("object_area = ")[1]) for c in _card_captions(at)]
    assert values and values == sorted(values)
    reasons = {c.split(":")[0] for c in _card_captions(at)}
    assert reasons <= {"missed", "mislocalised", "misclassified"}
    at.radio(key="px_view").set_value("tp").run()
    assert not at.exception, at.exception
    cards = _card_captions(at)
    assert cards and all(c.startswith("true positive: IoU") for c in cards)


def test_tagging_a_label_error_candidate() -> None:
    root = demo_project()
    at = _page(model="demo_model_crowd", view="errors", kind="swapped")
    assert not at.exception, at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**swapped**")]
    assert cards
    buttons = [b for b in at.button if b.key and b.key.startswith("px_tag_swapped_")]
    first = buttons[0]
    _, _, _, image_id, _, object_id = first.key.split("_", 5)
    assert tags.tags_of(root, "demo_crowd", int(image_id), int(object_id)) == []
    first.click().run()
    assert not at.exception, at.exception
    assert tags.tags_of(root, "demo_crowd", int(image_id), int(object_id)) == ["label_error"]
    again = next(b for b in at.button if b.key == first.key)
    assert again.label == "label_error" and again.proto.icon == ":material/check:"
    again.click().run()
    assert tags.tags_of(root, "demo_crowd", int(image_id), int(object_id)) == []


def test_overlooked_candidates_tag_the_image() -> None:
    root = demo_project()
    at = _page(model="demo_model_crowd", view="errors", kind="overlooked", tag="needs_label")
    assert not at.exception, at.exception
    button = next(b for b in at.button if b.key and b.key.startswith("px_tag_overlooked_"))
    image_id = int(button.key.split("_")[3])
    button.click().run()
    assert not at.exception, at.exception
    assert tags.tags_of(root, "demo_crowd", image_id) == ["needs_label"]


def test_score_labels_are_readable_at_card_size(tmp_path) -> None:
    """A card's score label is at least 18 px high in its 320-px picture, white on black."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from store import prediction_thumbnails as pt

    Image.new("RGB", (640, 480), (120, 160, 120)).save(tmp_path / "a.jpg")
    record = {"path": str(tmp_path / "a.jpg"), "status": "ok", "width": 640, "height": 480,
              "exif_orientation": 1, "orientation_applied": False, "file_name": "a.jpg"}  # fmt: skip
    objects = pd.DataFrame(columns=["object_id", "category_id", "category", "bbox_x", "bbox_y", "bbox_w",
                                    "bbox_h", "segmentation", "iscrowd"])  # fmt: skip
    predictions = pd.DataFrame([{"prediction_id": 1, "category_id": 1, "category": "x", "score": 0.87,
                                 "bbox_x": 200.0, "bbox_y": 150.0, "bbox_w": 200.0, "bbox_h": 150.0}])  # fmt: skip
    picture = np.asarray(pt.render(record, objects, predictions, focus=[(200, 150, 200, 150)],
                                   focus_prediction=1, max_side=320))  # fmt: skip
    white = np.all(picture > 235, axis=2)
    rows = np.flatnonzero(white.any(axis=1))
    assert len(rows) and rows.max() - rows.min() + 1 >= 10, "digits at least 10 px tall"


def _chart(at: AppTest) -> dict:
    import json

    chart = next(c for c in at.get("plotly_chart") if c.proto.id and "sample_chart" in c.proto.id)
    return json.loads(chart.proto.spec)


def test_every_explorer_card_opens_the_sample_view_with_labels_and_predictions() -> None:
    """A false-positive card opens the image: zoomable picture, labels per class, the model's dashed
    predictions above the score threshold (hover shows the score), and tags that can be added and removed."""
    root = demo_project()
    at = _page(model="demo_model_crowd", view="fp")
    opener = next(b for b in at.button if b.key and b.key.startswith("px_open_fp_"))
    assert next(b for b in at.button if b.key == opener.key.replace("px_open_", "px_tag_"))
    opener.click().run()
    assert not at.exception, at.exception
    dataset, _, image_id = at.query_params["detail"].rpartition("|")
    spec = _chart(at)
    kinds = [t["type"] for t in spec["data"]]
    assert kinds[0] == "image" and "scatter" in kinds
    labels = [t for t in spec["data"] if t.get("legendgroup") == "labels"]
    predicted = [t for t in spec["data"] if t.get("legendgroup") == "demo_model_crowd"]
    assert labels and predicted and all(t["line"]["dash"] == "dash" for t in predicted)
    assert at.slider(key="sample_score").value == 0.5
    scores = [float(h.rsplit("score ", 1)[1]) for t in predicted for h in t["hovertext"] if h]
    assert scores and min(scores) >= 0.5
    at.slider(key="sample_score").set_value(1.0).run()
    assert not any(t.get("legendgroup") == "demo_model_crowd" for t in _chart(at)["data"])
    at.toggle(key="sample_labels").set_value(False).run()
    assert not any(t.get("legendgroup") == "labels" for t in _chart(at)["data"])

    at.text_input(key=f"sample_new_{image_id}_None").set_value("sample-check").run()
    at.button(key=f"sample_tag_{image_id}_None").click().run()
    assert not at.exception, at.exception
    assert tags.tags_of(root, dataset, int(image_id)) == ["sample-check"]
    at.button(key=f"sample_untag_{image_id}_None_sample-check").click().run()
    assert tags.tags_of(root, dataset, int(image_id)) == []


def test_save_a_view_of_the_explorer_and_reopen_it() -> None:
    """Saved views on the Prediction explorer: model, gallery and filters under a name, shared by every
    session of the project; its parameters reopen the same gallery."""
    from store import views

    at = _page(model="demo_model_crowd", view="fn")
    assert not at.exception, at.exception
    at.text_input(key="px_view_name").set_value("missed by crowd").run()
    at.button(key="px_view_save").click().run()
    assert not at.exception, at.exception
    (saved,) = [v for v in views.list_views(demo_project()) if v["name"] == "missed by crowd"]
    assert saved["page"] == "pages/explorer.py"
    assert saved["query"]["model"] == ["demo_model_crowd"] and saved["query"]["view"] == ["fn"]
    again = _page(**{k: v[0] for k, v in saved["query"].items()})
    assert not again.exception, again.exception
    assert again.radio(key="px_view").value == "fn"
    assert any(c.value == "missed by crowd" for c in again.caption)  # listed (a link inside the app)
    again.button(key="px_view_delete_missed by crowd").click().run()
    assert not any(v["name"] == "missed by crowd" for v in views.list_views(demo_project()))
