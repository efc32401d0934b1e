"""Model quality page through AppTest on the demo project (three demo models)."""

from __future__ import annotations

import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.pages.app_page import run_page
from tests.pages.demo_project import demo_project


def _page(**query: str) -> AppTest:
    return run_page(demo_project(), "model_quality", via_app=False, timeout=120, **query)


def _stats(model: str, iou_type: str = "bbox") -> dict:
    return json.loads((demo_project() / "models" / model / "eval.json").read_text())[iou_type]


def test_stats_table_and_threshold() -> None:
    at = _page()
    assert not at.exception, at.exception
    stats = _stats("demo_model")["stats"]
    shown = {m.label: m.value for m in at.metric}
    assert list(shown) == [
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100",
        "ARs",
        "ARm",
        "ARl",
    ]
    assert shown["AP"] == f"{stats['AP']:.3f}" and shown["AR100"] == f"{stats['AR100']:.3f}"
    table = at.dataframe[0].value
    assert set(table["category"]) == {"circle", "square", "triangle"}
    assert (table["tp"] + table["fn"] == table["objects"]).all()
    at50 = table.set_index("category")[["tp", "fp", "fn"]]
    at.select_slider(key="mq_thr").set_value(0.9).run()
    assert not at.exception, at.exception
    at90 = at.dataframe[0].value.set_index("category")[["tp", "fp", "fn"]]
    assert (at90["tp"] < at50["tp"]).all() and (at90["fp"] > at50["fp"]).all()
    assert at.query_params["thr"] == "90"
    assert len(at.get("plotly_chart")) >= 5  # PR, confusion, two reason charts, model vs model


def test_model_and_threshold_come_from_the_url() -> None:
    at = _page(model="demo_model_crowd", iou="segm", thr="75")
    assert not at.exception, at.exception
    stats = _stats("demo_model_crowd", "segm")["stats"]
    assert {m.label: m.value for m in at.metric}["AP"] == f"{stats['AP']:.3f}"
    assert at.select_slider(key="mq_thr").value == 0.75
    # only one model on demo_crowd: nothing to compare with
    assert any("Only one model on demo_crowd" in i.value for i in at.info)


def test_model_vs_model_deltas() -> None:
    at = _page(model="demo_model")
    assert not at.exception, at.exception
    assert at.selectbox(key="mq_other").value == "demo_model_small"
    stats = at.dataframe[1].value.set_index("stat")
    a, b = _stats("demo_model")["stats"], _stats("demo_model_small")["stats"]
    assert abs(stats.loc["AP", "B − A"] - (b["AP"] - a["AP"])) < 1e-9 and stats.loc["AP", "B − A"] < 0
    classes = at.dataframe[2].value
    assert set(classes["category"]) == {"circle", "square", "triangle"}
    assert (abs(classes["ΔAP (B − A)"] - (classes["AP B"] - classes["AP A"])) < 1e-12).all()


def test_pr_classes_and_confusion_chart() -> None:
    at = _page(pr="2")
    assert not at.exception, at.exception
    assert at.multiselect(key="mq_pr_classes").value == [2]
    charts = at.get("plotly_chart")
    figures = [json.loads(c.proto.spec) for c in charts]
    pr = next(f for f in figures if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "recall")
    assert [t["name"] for t in pr["data"]] == ["square", "all classes"]
    heatmap = next(f for f in figures if f["data"] and f["data"][0]["type"] == "heatmap")
    counts = _stats("demo_model")["confusion"]["50"]["counts"]
    z = heatmap["data"][0]["z"]  # plotly ships arrays as typed base64
    shown = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(4, 4)
    assert shown.tolist() == counts and heatmap["data"][0]["x"][-1] == "pred: background"
