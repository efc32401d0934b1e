"""Which project and datasets the user is looking at, kept in session state and the URL.

Every view keeps its state in the query parameters, so a copied link reproduces it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import streamlit as st

from store.queries import ProjectReader

PAGE_SIZES = [12, 24, 48]  # gallery page sizes
# The default (left out of the URL): the smallest, because every card is a bordered container with a
# picture, a caption and two buttons that the browser lays out from scratch on each visit; 24 cards cost
# chromium about 0.6 CPU-s more per reload than 12 (docs/BENCHMARKS.md, "App in a browser").
DEFAULT_PAGE_SIZE = PAGE_SIZES[0]


def _project_from_argv() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--project")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.project


def default_project() -> str:
    return (
        st.query_params.get("project")
        or _project_from_argv()
        or os.environ.get("COCOLENS_PROJECT")
        or str(Path.cwd() / "demo_project")
    )


@st.cache_resource(show_spinner=False)
def _reader(root: str) -> ProjectReader:
    return ProjectReader(root)


def reader() -> ProjectReader:
    """The reader for the chosen project (one DuckDB per project per server, cursors per query)."""
    return _reader(str(Path(st.session_state.get("project", default_project())).expanduser().resolve()))


def selected_datasets() -> list[str]:
    chosen = st.session_state.get("datasets")
    available = reader().datasets()
    if not chosen:
        return available
    return [d for d in chosen if d in available] or available


def set_query(**values: object) -> None:
    """Write view state into the URL (None removes a key)."""
    for key, value in values.items():
        if value is None or value == "" or value == []:
            if key in st.query_params:
                del st.query_params[key]
        elif isinstance(value, list | tuple):
            st.query_params[key] = [str(v) for v in value]
        else:
            st.query_params[key] = str(value)


def query_value(key: str, default: str | None = None) -> str | None:
    return st.query_params.get(key, default)


def query_list(key: str) -> list[str]:
    return st.query_params.get_all(key)


def require_datasets() -> list[str]:
    """The selected datasets; with none in the project, say how to import one and stop the page."""
    datasets = selected_datasets()
    if not datasets:
        st.info(
            "This project has no datasets yet. Import one: "
            "`cocolens import coco --images DIR --annotations FILE --project DIR`."
        )
        st.stop()
    return datasets


# ----- URL-backed widget state of the galleries ------------------------------------------------------------


def init_state(key: str, query_key: str, parse: Callable[[str], Any], default: Any) -> None:
    """Give a widget its value from the URL the first time this session renders it."""
    if key in st.session_state:
        return
    raw = query_value(query_key)
    try:
        st.session_state[key] = parse(raw) if raw is not None else default
    except (TypeError, ValueError):
        st.session_state[key] = default


def init_choice(
    key: str, query_key: str, parse: Callable[[str], Any], options: Collection[Any], default: Any
) -> None:
    """:func:`init_state` for a pick among ``options``: a value the options no longer hold (an old link,
    a model or metric since removed) falls back to ``default`` instead of breaking the widget."""
    init_state(key, query_key, parse, default)
    if st.session_state[key] not in options:
        st.session_state[key] = default


def reset_view(prefix: str, *query_keys: str) -> Callable[[], None]:
    """A callback forgetting range and page (widget state and URL) when what they refer to changes."""

    def reset() -> None:
        for suffix in ("range", "page", "chart", *query_keys):
            st.session_state.pop(f"{prefix}_{suffix}", None)
        for key in ("lo", "hi", "page", *query_keys):
            st.query_params.pop(key, None)

    return reset


def write_url(
    prefix: str,
    metric: str | None,
    chosen: tuple[float, float] | None,
    sort_metric: str | None,
    descending: bool,
    page: int,
    size: int,
    issue: str | None,
    tag_filter: str | None,
) -> None:
    """Write the view's state into the URL so a copied link reproduces it."""
    set_query(
        metric=metric,
        lo=None if chosen is None else repr(chosen[0]),  # shortest text that reads back exactly
        hi=None if chosen is None else repr(chosen[1]),
        sort=sort_metric,
        order="desc" if descending else "asc",
        page=page + 1 if page else None,
        size=size if size != DEFAULT_PAGE_SIZE else None,
        issue=issue,
        tag=tag_filter,
        log="1" if st.session_state.get(f"{prefix}_log") else None,
    )
