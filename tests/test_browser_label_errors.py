"""The Label errors page in a real browser: accept a fix, undo it, accept everything above a threshold
after the confirmation. Screenshots go to artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from store import label_decisions
from tests.store.test_label_issues import planted_project
from tests.test_browser_e2e import (
    CHROMIUM,
    SCREENSHOTS,
    _assert_no_exception,
    _wait_rendered,
    app_in_browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, _, _ = planted_project(
        "fruits_nuts", tmp_path_factory.mktemp("le_browser"), 2, "fruits", predictions=True
    )
    return root


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_accept_undo_and_accept_above_threshold(project: Path) -> None:
    with app_in_browser(project, "label_errors") as page:
        page.screenshot(path=str(SCREENSHOTS / "label_errors.png"), full_page=True)
        _assert_no_exception(page, "label_errors")
        queue = page.get_by_text(re.compile(r"^[\d,]+ labels in the queue"))
        queue.wait_for(timeout=60_000)
        before = int(re.match(r"([\d,]+)", queue.inner_text()).group(1).replace(",", ""))

        page.get_by_role("button", name="Accept", exact=True).first.click()
        _wait_rendered(page)
        stored = label_decisions.decisions(project, "fruits")
        assert list(stored["decision"]) == ["accepted"]
        page.get_by_text(f"{before - 1:,} labels in the queue").wait_for(timeout=60_000)

        show = page.locator('[data-testid="stSelectbox"]').filter(has_text="Show").first
        show.click()
        page.get_by_role("option", name="accepted").click()
        _wait_rendered(page)
        page.get_by_role("button", name="Undo", exact=True).first.click()
        _wait_rendered(page)
        assert label_decisions.decisions(project, "fruits").empty

        show.click()
        page.get_by_role("option", name="open").click()
        _wait_rendered(page)
        page.get_by_role("button", name=re.compile(r"^Accept [\d,]+ fixes…$")).first.click()
        _wait_rendered(page)
        page.get_by_text(re.compile(r"Accept the suggested fix for [\d,]+ findings")).wait_for(timeout=60_000)
        assert label_decisions.decisions(project, "fruits").empty  # nothing until confirmed
        page.screenshot(path=str(SCREENSHOTS / "label_errors_confirm.png"), full_page=True)
        page.get_by_role("button", name="Yes, accept them").click()
        _wait_rendered(page)
        accepted = label_decisions.decisions(project, "fruits")
        assert len(accepted) > 0 and set(accepted["decision"]) == {"accepted"}
        _assert_no_exception(page, "label_errors after bulk accept")
