"""The sample view lists the label-error findings of the image it shows (score, kind, fix, evidence) and
its missing-label candidates, draws them on the image, and decides them (accept / reject / undo) with the
same stored decisions as the Label errors page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from store import label_decisions
from tests.conftest import REPO
from tests.pages.test_label_errors import scored  # noqa: F401 - shared module fixture
from tests.store.test_label_issues import corrupted_fruits  # noqa: F401 - shared module fixture

FLAG = 0.5


def _findings(project: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = project / "datasets" / "fruits" / "label_issues"
    objects = pd.read_parquet(folder / "objects.parquet")
    candidates = pd.read_parquet(folder / "candidates.parquet")
    return objects[objects["label_issue"] >= FLAG], candidates[candidates["missing_probability"] >= FLAG]


def _open(project: Path, image_id: int) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    at.session_state["project"] = str(project)
    at.switch_page("pages/data_quality.py")
    at.query_params["detail"] = f"fruits|{image_id}"
    return at.run()


def _traces(at: AppTest) -> dict[str, dict]:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id and "sample_chart" in c.proto.id]
    return {
        t["name"]: t for t in json.loads(chart.proto.spec)["data"] if t.get("legendgroup") == "label errors"
    }


def _boxes(trace: dict) -> int:
    return sum(1 for y in trace["y"] if y is None)  # one None after each outline


def test_findings_listed_drawn_and_decided_in_the_sample_view(scored) -> None:  # noqa: F811
    flagged, missing = _findings(scored)
    per_image = flagged.groupby("image_id").size().add(missing.groupby("image_id").size(), fill_value=0)
    with_candidates = set(missing["image_id"])
    # the image with the most findings, preferring one that also has a missing-label candidate
    image_id = int(
        per_image[per_image.index.isin(with_candidates)].idxmax() if with_candidates else per_image.idxmax()
    )
    here, here_missing = flagged[flagged["image_id"] == image_id], missing[missing["image_id"] == image_id]
    assert len(here) and len(here_missing), "the planted project has an image with both kinds of findings"
    at = _open(scored, image_id)
    assert not at.exception, at.exception
    heading = f"**Label errors on this image** ({len(here)} flagged, {len(here_missing)} possibly missing)"
    assert any(m.value == heading for m in at.markdown), [m.value for m in at.markdown][:12]
    for row in here.itertuples():
        line = [m.value for m in at.markdown if f"**object {int(row.object_id)}**" in m.value]
        assert len(line) == 1 and f"label_issue **{row.label_issue:.2f}**" in line[0] and "Fix: " in line[0]
    assert len(at.caption) and any(
        "IoU" in c.value or "neighbour" in c.value or "box" in c.value for c in at.caption
    )
    traces = _traces(at)
    assert _boxes(traces["flagged label"]) == len(here)
    assert _boxes(traces["missing label?"]) == len(here_missing)
    assert any(
        f"P(overlooked) **{p:.2f}**" in m.value
        for m in at.markdown
        for p in here_missing["missing_probability"]
    )

    # Decide from the sample view: stored like the Label errors page's decisions, and undoable.
    target = here.sort_values("label_issue", ascending=False).iloc[0]
    key = f"fruits_{image_id}_{int(target['object_id'])}"
    button = at.button(key=f"sv_acc_{key}")
    if button.disabled:  # a finding with nothing to apply ('review') can only be rejected
        at.button(key=f"sv_rej_{key}").click().run()
        expected = "rejected"
    else:
        button.click().run()
        expected = "accepted"
    assert not at.exception, at.exception
    stored = label_decisions.decisions(scored, "fruits")
    assert list(stored["item_id"]) == [int(target["object_id"])] and list(stored["decision"]) == [expected]
    assert any(
        f"**object {int(target['object_id'])}**" in m.value and f"**{expected}**" in m.value
        for m in at.markdown
    )
    at.button(key=f"sv_undo_{key}").click().run()
    assert label_decisions.decisions(scored, "fruits").empty

    at.toggle(key="sample_findings").set_value(False).run()
    assert not _traces(at), "the findings can be hidden"


def test_image_without_findings_says_so(scored) -> None:  # noqa: F811
    flagged, missing = _findings(scored)
    images = pd.read_parquet(scored / "datasets" / "fruits" / "images.parquet")
    clean = sorted(set(images["image_id"]) - set(flagged["image_id"]) - set(missing["image_id"]))
    at = _open(scored, int(clean[0]))
    assert not at.exception, at.exception
    assert any("no label of this image is flagged" in c.value for c in at.caption)
    assert not _traces(at) and at.toggle(key="sample_findings").disabled
