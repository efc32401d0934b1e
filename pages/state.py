"""Which project and datasets the user is looking at, kept in session state and the URL.

Every view keeps its state in the query parameters, so a copied link reproduces it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from store.queries import ProjectReader


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
