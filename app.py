"""cocolens app entry: navigation and the sidebar project/dataset picker, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

import metrics.passive_openmp  # noqa: F401  (before any page loads torch or faiss: OpenMP threads sleep, not spin)
from pages.state import default_project, reader, set_query
from pages.training_form import render_training_form

PAGES_DIR = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="cocolens", page_icon=":material/search:", layout="wide")


def _sidebar() -> None:
    with st.sidebar:
        st.markdown("### :material/search: cocolens")
        if "project" not in st.session_state:
            st.session_state["project"] = default_project()
        st.text_input(
            "Project folder", key="project", help="A folder made by `cocolens import coco --project DIR`."
        )
        project_reader = reader()
        datasets = project_reader.datasets()
        if not project_reader.project.exists() or not datasets:
            st.warning(
                "No datasets in this project yet. Import one with `cocolens import coco …` or run `cocolens demo`."
            )
            return
        if "datasets" not in st.session_state:
            wanted = st.query_params.get_all("ds")
            st.session_state["datasets"] = [d for d in wanted if d in datasets] or datasets
        st.multiselect("Datasets", datasets, key="datasets", help="Every page shows these datasets.")
        set_query(project=st.session_state["project"], ds=st.session_state["datasets"])
        render_training_form(project_reader.project.root, datasets)


PAGES = [
    ("summary.py", "Summary", ":material/dashboard:", True),
    ("data_quality.py", "Data quality", ":material/image:", False),
    ("label_quality.py", "Label quality", ":material/label:", False),
    ("label_errors.py", "Label errors", ":material/rule:", False),
    ("compare.py", "Compare datasets", ":material/compare:", False),
    ("embeddings.py", "Embeddings", ":material/scatter_plot:", False),
    ("model_quality.py", "Model quality", ":material/track_changes:", False),
    ("performance.py", "Performance by metric", ":material/trending_up:", False),
    ("explorer.py", "Prediction explorer", ":material/manage_search:", False),
    ("training.py", "Training", ":material/model_training:", False),
    ("export.py", "Filter & export", ":material/filter_alt:", False),
]


def _one_line_for_damaged_files(run: Callable[[], None]) -> None:
    """A damaged project file (cut-short Parquet, broken JSON) is the CLI's one line naming the file
    and how to rebuild it, not a DuckDB traceback; anything else stays a traceback (a bug)."""
    from store.errors import InputError, damaged_file_error

    try:
        run()
    except Exception as exc:
        error = exc if isinstance(exc, InputError) else damaged_file_error(exc)
        if error is None:
            raise
        st.error(str(error), icon=":material/broken_image:")
        st.stop()


_one_line_for_damaged_files(_sidebar)
navigation = st.navigation(
    [
        st.Page(
            str(PAGES_DIR / file), title=title, icon=icon, default=default, url_path=file.removesuffix(".py")
        )
        for file, title, icon, default in PAGES
        if (PAGES_DIR / file).is_file()
    ]
)
_one_line_for_damaged_files(navigation.run)
