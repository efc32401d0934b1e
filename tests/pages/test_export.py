"""Filter & export page through AppTest: URL state, live counts, tagging, COCO and CSV export."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from store.coco_import import import_coco
from store.filters import Filter, match_counts
from store.queries import ProjectReader
from store.tags import tagged
from tests.conftest import REPO, shared, write_small_coco


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("export_page")
    root = base / "project"
    for name, seed in (("a", 0), ("b", 3)):
        images, ann = write_small_coco(base / name, n_images=5, seed=seed)
        import_coco(images, ann, root, dataset=name, workers=1)
    return root


def _page(project: Path, **query: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "export.py"), default_timeout=120)
    at.session_state["project"] = str(project)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _counts(at: AppTest) -> dict[str, int]:
    values = {m.label: int(m.value.replace(",", "")) for m in at.metric}
    return {"images": values["Matching images"], "objects": values["Matching objects"]}


def test_filter_from_url_counts_like_the_store(project: Path) -> None:
    at = _page(project, f_ds="a", f_cls="orange", f_range=["object_area::1000"])
    assert not at.exception, at.exception
    expected = match_counts(
        ProjectReader(project),
        Filter(datasets=["a"], classes=["orange"], ranges={"object_area": (None, 1000.0)}),
    )
    assert _counts(at) == expected and 0 < expected["objects"] < 5
    at.multiselect(key="fx_cls").set_value([]).run()
    assert "f_cls" not in at.query_params and _counts(at)["objects"] >= expected["objects"]
    assert "object_area" in at.query_params["f_range"]


def test_bad_where_shows_one_line_error(project: Path) -> None:
    at = _page(project, f_where="read_csv('/etc/passwd') IS NULL")
    assert not at.exception
    assert at.error[0].value.startswith("--where: function read_csv() is not allowed")


def test_tag_everything_then_export_coco_and_csv(project: Path, tmp_path: Path) -> None:
    at = _page(project, f_ds="b", f_where="category = 'red'")
    counts = _counts(at)
    assert counts == {"images": 5, "objects": 5}
    at.text_input(key="fx_tag_name").set_value("reds").run()
    at.radio(key="fx_tag_level").set_value("objects").run()
    at.button(key="fx_tag_button").click().run()
    assert not at.exception, at.exception
    assert (
        at.warning[0].value == "Tag all 5 matching objects with 'reds'?" and len(tagged(project, "reds")) == 0
    )
    at.button(key="fx_tag_confirm").click().run()
    assert "Tagged 5 objects" in at.success[0].value
    assert len(tagged(project, "reds")) == 5

    out = tmp_path / "b.json"
    at.text_input(key="fx_out_COCO JSON").set_value(str(out)).run()
    at.checkbox(key="fx_with_metrics").check().run()
    at.button(key="fx_export_button").click().run()
    assert not at.exception, at.exception
    assert str(out) in at.success[-1].value and len(at.get("download_button")) == 1
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 5 and len(coco["annotations"]) == 5
    assert {a["category_id"] for a in coco["annotations"]} == {1}
    assert all(im["cocolens_content_hash"] and "cocolens_metrics" in im for im in coco["images"])

    csv_out = tmp_path / "objects.csv"
    at.radio(key="fx_format").set_value("CSV (objects)").run()
    at.text_input(key="fx_out_CSV (objects)").set_value(str(csv_out)).run()
    at.button(key="fx_export_button").click().run()
    assert not at.exception, at.exception
    table = pd.read_csv(csv_out)
    assert len(table) == 5 and set(table["category"]) == {"red"} and "object_area" in table.columns

    tagged_view = _page(project, f_tag="reds")
    assert _counts(tagged_view) == {"images": 5, "objects": 5}


def test_range_typed_as_shown_keeps_the_real_extremes(tmp_path: Path) -> None:
    """A bound typed as the page shows the data's minimum (6 significant digits) keeps the minimum item."""
    fruits = shared("fruits_nuts")
    root = tmp_path / "p"
    import_coco(fruits / "images", fruits / "annotations.json", root, dataset="fruits", workers=1)
    frames = {
        m: pd.read_parquet(root / "datasets" / "fruits" / "metrics" / f"image__{m}.parquet")["value"]
        for m in ("sharpness", "brightness", "contrast", "entropy")
    }
    metric, values = next((m, v) for m, v in frames.items() if float(f"{v.min():.6g}") > v.min())
    shown_min = float(f"{values.min():.6g}")
    middle = float(values.sort_values().iloc[len(values) // 2])
    at = _page(root)
    at.multiselect(key="fx_range_metrics").set_value([metric]).run()
    assert _counts(at)["images"] == 18, "the full range keeps every image"
    at.number_input(key=f"fx_lo_{metric}").set_value(shown_min).run()
    at.number_input(key=f"fx_hi_{metric}").set_value(middle).run()
    assert not at.exception, at.exception
    assert _counts(at)["images"] == int((values <= middle).sum())
    shown_max = float(f"{values.max():.6g}")
    at.number_input(key=f"fx_hi_{metric}").set_value(shown_max).run()
    assert _counts(at)["images"] == 18


def test_terminal_command_shown_exports_what_the_page_exports(project: Path, tmp_path: Path) -> None:
    """The page's terminal equivalent (tags as has_tag) run through the CLI gives the page's export."""
    import shlex

    from cli import main
    from store.tags import add_tags

    add_tags(project, "a", [0, 2], None, "cli check")
    at = _page(project, f_ds="a", f_tag="cli check", f_cls="red")
    assert not at.exception, at.exception
    command = next(c.value for c in at.code if c.value.startswith("cocolens export coco"))
    assert "has_tag('cli check')" in command and "category IN ('red')" in command
    out = tmp_path / "cli.json"
    assert " \\\n    --where " in command  # one flag a line, with the shell's continuation
    one_line = command.replace("\\\n", " ")
    argv = [str(out) if word == "FILE" else word for word in shlex.split(one_line)[1:]]
    assert main(argv) == 0
    page_out = tmp_path / "page.json"
    at.text_input(key="fx_out_COCO JSON").set_value(str(page_out)).run()
    at.button(key="fx_export_button").click().run()
    assert not at.exception, at.exception
    by_cli, by_page = json.loads(out.read_text()), json.loads(page_out.read_text())
    assert [i["id"] for i in by_cli["images"]] == [i["id"] for i in by_page["images"]] == [0, 2]
    assert [a["id"] for a in by_cli["annotations"]] == [a["id"] for a in by_page["annotations"]]
    assert len(by_page["annotations"]) == 2


def test_untag_all_matching_asks_with_the_count(project: Path) -> None:
    from store.tags import add_tags

    add_tags(project, "a", [0, 1, 2, 3, 4], None, "to drop")
    at = _page(project, f_ds="a", f_where="image_id < 3")
    at.text_input(key="fx_tag_name").set_value("to drop").run()
    at.button(key="fx_untag_button").click().run()
    assert at.warning[0].value == "Remove 'to drop' from all 3 matching images?"
    at.button(key="fx_tag_confirm").click().run()
    assert not at.exception, at.exception
    assert "Removed 'to drop' from 3 images" in at.success[0].value
    assert sorted(tagged(project, "to drop")["image_id"]) == [3, 4]


def test_coco_export_says_which_dataset_or_writes_one_file_each(project: Path, tmp_path: Path) -> None:
    """With two datasets in the filter the page says it exports one, and which; or writes one file per
    dataset. Exported files get the usual permissions (0644 under umask 022), not mkstemp's 0600."""
    import os
    import stat

    old_umask = os.umask(0o022)
    try:
        at = _page(project, f_where="image_id < 2")
        note = next(i.value for i in at.info if "Exports" in i.value)
        assert note.startswith("Exports **a** only (2 of the 4 matching images)") and "**b**" in note
        one = tmp_path / "one.json"
        at.text_input(key="fx_out_COCO JSON").set_value(str(one)).run()
        at.button(key="fx_export_button").click().run()
        assert not at.exception, at.exception
        assert stat.S_IMODE(one.stat().st_mode) == 0o644
        assert len(json.loads(one.read_text())["images"]) == 2

        at.checkbox(key="fx_every_dataset").check().run()
        assert any("**a**.json (2 images), **b**.json (2 images)" in i.value for i in at.info)
        shown = next(c.value for c in at.code if c.value.startswith("cocolens export coco"))
        commands = shown.replace("\\\n", " ").splitlines()
        assert len(commands) == 2 and '--dataset "b" --out DIR/b.json' in commands[1]
        folder = tmp_path / "each"
        at.text_input(key="fx_out_COCO JSON").set_value(str(folder)).run()
        at.button(key="fx_export_button").click().run()
        assert not at.exception, at.exception
        for name in ("a", "b"):
            coco = json.loads((folder / f"{name}.json").read_text())
            assert [i["id"] for i in coco["images"]] == [0, 1]
            assert stat.S_IMODE((folder / f"{name}.json").stat().st_mode) == 0o644
        assert "a.json: 2 images" in at.success[-1].value and "b.json: 2 images" in at.success[-1].value
    finally:
        os.umask(old_umask)


def test_the_issue_picker_offers_every_issue_of_the_catalogue(project: Path) -> None:
    """The picker is the catalogue (it once lacked embedding near duplicates, which filters refused)."""
    from store.issue_catalogue import NAMES

    at = _page(project, f_issue="embedding_near_duplicate_groups")
    assert not at.exception, at.exception
    picker = at.selectbox(key="fx_issue")
    assert picker.options == ["—", *(name.replace("_", " ") for name in NAMES)]
    assert picker.value == "embedding_near_duplicate_groups" and _counts(at) == {"images": 0, "objects": 0}
