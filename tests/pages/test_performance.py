"""Performance by metric page through AppTest on the demo project."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from store import model_queries as mq
from store.queries import ProjectReader
from tests.conftest import REPO
from tests.pages.demo_project import demo_project


def _page(**query: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "performance.py"), default_timeout=180)
    at.session_state["project"] = str(demo_project())
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_metrics_ranked_on_both_sides() -> None:
    at = _page(model="demo_model_crowd")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"object_area", "brightness", "border_closeness"} <= set(table["metric"])
    assert set(table["level"]) == {"image", "object"}
    for column in ("MI (precision)", "MI (recall)"):
        assert (table[column].dropna() >= 0).all() and table[column].notna().sum() > 10
    for column in ("ρ (precision)", "ρ (missed)"):
        assert table[column].dropna().between(-1, 1).all()
    assert list(table["MI (recall)"].dropna()) == sorted(table["MI (recall)"].dropna(), reverse=True)
    assert table["meaning"].str.contains("Range").any()
    assert len(at.get("plotly_chart")) == 3  # precision ranking, recall ranking, bins
    # Significance against 200 permutations: p in [1/201, 1]; the grey bars are exactly the p >= 0.05 ones.
    for side in ("precision", "recall"):
        p = table[f"p ({side})"].dropna()
        assert p.between(1 / 201 - 1e-12, 1).all() and len(p) > 10
        assert (table[f"significant ({side})"] == (table[f"p ({side})"] < 0.05)).all()
    recall_chart = json.loads(at.get("plotly_chart")[1].proto.spec)["data"]
    by_name = {trace["name"]: trace for trace in recall_chart}
    grey = by_name["not significant (p ≥ 0.05)"]
    assert grey["marker"]["color"] == "#c8c8c8" and all("n.s. (p " in t for t in grey["text"])
    recall = table.dropna(subset=["MI (recall)"])
    assert sorted(grey["y"]) == sorted(
        f"{m} ({lvl})"
        for m, lvl, sig in zip(recall["metric"], recall["level"], recall["significant (recall)"], strict=True)
        if not sig
    )
    assert len(by_name["significant"]["y"]) == recall["significant (recall)"].sum() > 0
    assert "permutation" in at.subheader[0].proto.help
    at.radio(key="pf_side").set_value("iou_tp").run()
    assert not at.exception and at.query_params["side"] == "iou_tp"


def test_bins_count_every_prediction_and_label_and_follow_the_class() -> None:
    at = _page(model="demo_model_crowd", metric="object:object_area", bins="5")
    assert not at.exception, at.exception
    reader = ProjectReader(demo_project())
    predictions = mq.prediction_frame(reader, "demo_model_crowd", "bbox", "50")
    objects = mq.object_frame(reader, "demo_model_crowd", "bbox", "50")
    bins = at.dataframe[1].value
    precision = bins[bins["outcome"] == "precision"]
    misses = bins[bins["outcome"] == "FN rate"]
    assert len(precision) == 5 and len(misses) == 5
    assert precision["count"].sum() == predictions["object:object_area"].notna().sum()
    assert misses["count"].sum() == len(objects)
    weighted = (misses["rate"] * misses["count"]).sum() / misses["count"].sum()
    assert abs(weighted - objects["missed"].mean()) < 1e-9
    assert ((bins["ci_low"] <= bins["rate"]) & (bins["rate"] <= bins["ci_high"])).all()
    at.selectbox(key="pf_class").set_value(2).run()
    assert not at.exception, at.exception
    squares = at.dataframe[1].value
    assert squares[squares["outcome"] == "FN rate"]["count"].sum() == (objects["category_id"] == 2).sum()
    assert at.query_params["cls"] == "2"
