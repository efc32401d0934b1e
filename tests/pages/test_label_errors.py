"""The Label errors page: the ranked queue with label and fix side by side, accept / reject / undo,
accept-above-threshold with a confirmation, missing-label candidates, and the no-scores message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from cli import main
from pages.label_errors import PAGE_SIZE
from store import label_decisions
from tests.conftest import write_small_coco
from tests.pages.app_page import run_page
from tests.store.test_label_issues import corrupted_fruits  # noqa: F401 - shared module fixture


@pytest.fixture(scope="module")
def scored(corrupted_fruits) -> Path:  # noqa: F811
    project, _, preds = corrupted_fruits
    assert (
        main(["import", "predictions", str(preds), "--project", str(project), "--model", "det", "--quiet"])
        == 0
    )
    return project


def _page(project: Path) -> AppTest:
    return run_page(project, "label_errors", timeout=90)


def _object_keys(at: AppTest, prefix: str = "le_acc_fruits_") -> list[tuple[int, int]]:
    keys = [b.key.removeprefix(prefix).split("_") for b in at.button if b.key and b.key.startswith(prefix)]
    return [(int(i), int(o)) for i, o in keys]


def test_queue_ranks_labels_and_shows_label_and_fix(scored) -> None:
    at = _page(scored)
    assert not at.exception, at.exception
    assert any("label_issue" in c.value and "higher = more likely wrong" in c.value for c in at.caption)
    objects = pd.read_parquet(scored / "datasets" / "fruits" / "label_issues" / "objects.parquet")
    flagged = objects[objects["label_issue"] >= 0.5].sort_values("label_issue", ascending=False)
    assert any(m.value.startswith(f"**{len(flagged):,} labels** in the queue") for m in at.markdown)
    shown = _object_keys(at)
    assert len(shown) == min(PAGE_SIZE, len(flagged))
    top = set(zip(flagged["image_id"].head(PAGE_SIZE), flagged["object_id"].head(PAGE_SIZE), strict=True))
    assert set(shown) == top
    assert len(at.get("image")) >= 2 * len(shown)  # as labelled + suggested fix on every card
    assert sum("Fix: " in m.value for m in at.markdown) == len(shown)


def test_accept_reject_undo_are_stored_and_reversible(scored) -> None:
    at = _page(scored)
    first, second = _object_keys(at)[:2]
    at.button(key=f"le_acc_fruits_{first[0]}_{first[1]}").click().run()
    at.button(key=f"le_rej_fruits_{second[0]}_{second[1]}").click().run()
    stored = label_decisions.decisions(scored, "fruits").set_index("item_id")["decision"]
    assert stored[first[1]] == "accepted" and stored[second[1]] == "rejected"
    assert (first[0], first[1]) not in _object_keys(at)  # decided findings leave the open queue
    at.selectbox(key="le_decided").set_value("all").run()
    at.button(key=f"le_undo_fruits_{first[0]}_{first[1]}").click().run()
    at.button(key=f"le_undo_fruits_{second[0]}_{second[1]}").click().run()
    assert label_decisions.decisions(scored, "fruits").empty


def test_accept_all_above_threshold_asks_first(scored) -> None:
    at = _page(scored)
    at.number_input(key="le_object_bulk_t").set_value(0.8).run()
    objects = pd.read_parquet(scored / "datasets" / "fruits" / "label_issues" / "objects.parquet")
    expected = objects[(objects["label_issue"] >= 0.8) & (objects["fix"] != "review")]
    assert len(expected) > 0
    at.button(key="le_object_bulk").click().run()
    assert any(f"**{len(expected):,}** findings" in w.value for w in at.warning)
    assert label_decisions.decisions(scored, "fruits").empty  # nothing decided before confirming
    at.button(key="le_object_bulk_yes").click().run()
    stored = label_decisions.decisions(scored, "fruits")
    assert len(stored) == len(expected) and set(stored["decision"]) == {"accepted"}
    label_decisions.undo(
        scored,
        "fruits",
        [{"finding": "object", "image_id": r.image_id, "item_id": r.item_id} for r in stored.itertuples()],
    )


def test_missing_label_candidates_can_be_accepted(scored) -> None:
    at = _page(scored)
    at.slider(key="le_c_min").set_value(0.0).run()
    keys = [b.key for b in at.button if b.key and b.key.startswith("le_acc_c_fruits_")]
    assert keys
    at.button(key=keys[0]).click().run()
    stored = label_decisions.decisions(scored, "fruits")
    assert list(stored["finding"]) == ["candidate"] and list(stored["fix"]) == ["add"]
    assert keys[0] not in [b.key for b in at.button]  # decided: gone from the open list
    at.selectbox(key="le_c_decided").set_value("all").run()
    at.button(key=keys[0].replace("le_acc_", "le_undo_")).click().run()
    assert label_decisions.decisions(scored, "fruits").empty


def test_unscored_project_says_which_command_scores_it(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src")
    project = tmp_path / "project"
    assert main(["import", "coco", "--images", str(images), "--annotations", str(annotations),
                 "--project", str(project), "--dataset", "small", "--quiet"]) == 0  # fmt: skip
    at = _page(project)
    assert not at.exception, at.exception
    assert any("cocolens metrics --project" in i.value for i in at.info)


def test_demo_project_opens_with_the_careless_dataset_flagged_more() -> None:
    from tests.pages.demo_project import demo_project

    project = demo_project()
    flagged = {}
    for name in ("demo_reviewed", "demo_crowd"):
        objects = pd.read_parquet(project / "datasets" / name / "label_issues" / "objects.parquet")
        flagged[name] = (objects["label_issue"] >= 0.5).mean()
    assert flagged["demo_crowd"] > 1.5 * flagged["demo_reviewed"], flagged  # 20 % vs 11 % when written
    at = _page(project)
    assert not at.exception, at.exception
    assert _object_keys(at, "le_acc_demo_crowd_") or _object_keys(at, "le_acc_demo_reviewed_")
