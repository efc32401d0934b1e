"""One way to open a page under AppTest: the project in session state, the view in the URL."""

from __future__ import annotations

from pathlib import Path

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
