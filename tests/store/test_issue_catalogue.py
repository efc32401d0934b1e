"""The issue catalogue drives every consumer: counts, gallery SQL, filter SQL and the pages' lists.

Each test iterates :data:`store.issue_catalogue.CATALOGUE`, so an issue added there and forgotten by
a consumer (or a consumer keeping its own list) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from store import gallery_queries as gq
from store import issue_catalogue as catalogue
from store.filters import Filter, match_counts
from store.queries import ProjectReader
from store.report import issue_counts
from tests.store.test_gallery_queries import build_quality_project

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ["cli.py", "app.py", "metrics", "models", "pages", "store"]

# Names an issue shares with another concept: the per-dataset counts of missing / unreadable image
# files (``dataset_counts`` columns, the import summary, the report's ``datasets`` block, whose keys
# the design brief fixes) and the label-error pass's count of images with a likely missing label.
# Each (name, module) listed here must still hold the literal: a stale entry fails too.
SAME_NAME_OTHER_CONCEPT = {
    ("missing_images", "store/coco_import.py"),
    ("unreadable_images", "store/coco_import.py"),
    ("missing_images", "cli.py"),
    ("unreadable_images", "cli.py"),
    ("missing_images", "pages/compare.py"),
    ("missing_images", "store/label_issues.py"),
}


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> ProjectReader:
    return ProjectReader(build_quality_project(tmp_path_factory.mktemp("catalogue")))


def _product_files() -> list[Path]:
    files: list[Path] = []
    for entry in PRODUCT:
        path = REPO / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _literal_modules(name: str) -> set[str]:
    """Product modules holding ``name`` as a string literal (docstrings and comments do not count)."""
    found = set()
    for path in _product_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Constant) and node.value == name for node in ast.walk(tree)):
            found.add(path.relative_to(REPO).as_posix())
    return found


def test_the_catalogue_names_each_issue_once_with_a_complete_rule():
    assert len(catalogue.NAMES) == len(set(catalogue.NAMES)) == len(catalogue.CATALOGUE)
    for issue in catalogue.CATALOGUE:
        assert issue.level in ("image", "object") and issue.reason, issue
        if issue.rule == "metric":
            assert issue.metric and issue.threshold is not None and issue.direction in ("below", "above")
        else:
            assert issue.metric is None and issue.help, issue
        if issue.rule in ("duplicates", "status"):
            assert issue.value, issue
    small = catalogue.get(catalogue.SMALL_CLASS_ISSUE)
    assert str(catalogue.SMALL_CLASS_OBJECTS) in small.name  # the name states the bound it counts


def test_each_issue_name_is_a_literal_in_the_catalogue_only():
    for name in catalogue.NAMES:
        modules = _literal_modules(name)
        others = {module for (issue, module) in SAME_NAME_OTHER_CONCEPT if issue == name}
        assert modules == {"store/issue_catalogue.py"} | others, name


def test_the_report_counts_every_issue_in_catalogue_order(reader):
    assert list(issue_counts(reader)) == list(catalogue.NAMES)


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_gallery_and_filter_select_what_the_report_counts(reader, name):
    """The gallery and Filter & export select the items the Summary counts (groups aside)."""
    issue = catalogue.get(name)
    counted = issue_counts(reader, ["a", "b"])[name]
    shown = gq.count_items(reader, gq.GalleryFilter(level=issue.level, datasets=["a", "b"], issue=name))
    matched = match_counts(reader, Filter(datasets=["a", "b"], issue=name))[f"{issue.level}s"]
    assert shown == matched
    if issue.rule == "small_class":
        small = reader.df(
            "SELECT count(*) AS n FROM objects WHERE dataset IN ('a', 'b') GROUP BY dataset, category_id"
        )["n"]
        assert shown == int(small[small < catalogue.SMALL_CLASS_OBJECTS].sum())
    elif issue.counts == "items":
        assert shown == counted
    else:
        assert shown >= 2 * counted  # every group has at least two images


def test_the_catalogue_selects_something_of_each_rule_in_the_fixture(reader):
    """The parametrised comparison above is not 0 == 0 for every kind of rule."""
    counts = issue_counts(reader, ["a", "b"])
    for rule in ("metric", "duplicates", "status", "small_class"):
        assert any(counts[i.name] for i in catalogue.CATALOGUE if i.rule == rule), rule


def test_every_issue_has_a_gallery_level_a_rule_text_and_a_summary_link():
    for issue in catalogue.CATALOGUE:
        assert gq.issue_level(issue.name) == issue.level
        assert issue.name in (gq.IMAGE_ISSUES if issue.level == "image" else gq.OBJECT_ISSUES)
        assert gq.issue_rule(issue.name)
        assert catalogue.summary_help(issue)
        link = issue.gallery_link
        assert link == {} if issue.page == "label_errors" else link["issue"] == issue.name
        assert (REPO / "pages" / f"{issue.page}.py").is_file()


def test_an_unknown_issue_is_refused_by_each_consumer(reader):
    from store.errors import InputError

    with pytest.raises(KeyError, match="unknown issue"):
        gq.issue_level("no_such_issue")
    with pytest.raises(InputError, match="unknown issue"):
        match_counts(reader, Filter(issue="no_such_issue"))
    with pytest.raises(KeyError, match="unknown issue"):
        gq.count_items(reader, gq.GalleryFilter(issue="no_such_issue"))
