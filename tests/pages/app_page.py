"""One way to open a page under AppTest: the project in session state, the view in the URL."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


def run_page(project: Path, page: str, via_app: bool = True, timeout: int = 60, **query: str) -> AppTest:
    """Run ``pages/PAGE.py`` on ``project`` with ``query`` as URL parameters and return the AppTest.

    ``via_app``: through ``app.py`` (its navigation and sidebar) as a user opens it; otherwise the page
    file alone (faster; no sidebar dataset picker).
    """
    at = AppTest.from_file(str(REPO / ("app.py" if via_app else f"pages/{page}.py")), default_timeout=timeout)
    at.session_state["project"] = str(project)
    if via_app:
        at.switch_page(f"pages/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def stated_count(at: AppTest, noun: str) -> int:
    """The gallery's item count as the page states it ("**1,234 images**" for ``noun`` "images")."""
    for markdown in at.markdown:
        found = re.match(rf"\*\*([\d,]+) {noun}\*\*", markdown.value)
        if found:
            return int(found.group(1).replace(",", ""))
    raise AssertionError(f"no {noun} count on the page")


def card_keys(at: AppTest, prefix: str) -> list[str]:
    """Keys of the buttons starting with ``prefix``: one per gallery card (its detail button)."""
    return [b.key for b in at.button if b.key and b.key.startswith(prefix)]


def stored_metric(project: Path, metric: str, level: str) -> pd.DataFrame:
    """Every dataset's stored values of one metric, read from its Parquet files (what the page should show)."""
    files = sorted((project / "datasets").glob(f"*/metrics/{level}__{metric}.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files])
