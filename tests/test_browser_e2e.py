"""End to end in a real browser: the app server, every page, a tag and an export, in headless chromium.

Screenshots go to artifacts/screenshots/ (git-ignored) so a person can look at every page.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.coco_import import import_coco
from store.tags import tagged
from tests.conftest import REPO, shared, write_small_coco

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium")
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _page_paths() -> list[str]:
    import ast

    tree = ast.parse((REPO / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            files = [elt.elts[0].value for elt in node.value.elts]
            return [f.removesuffix(".py") for f in files if (REPO / "pages" / f).is_file()]
    raise AssertionError("app.py has no PAGES list")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server at {url} not healthy after {timeout:.0f} s")


def _wait_rendered(page, timeout_ms: int = 90_000) -> None:
    """The script has finished: a title is shown, Streamlit's 'running' indicator and the grey
    placeholder skeletons of elements not drawn yet are gone (the status widget alone can be absent
    for a moment before a first run starts)."""
    page.wait_for_selector("h1", timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-testid="stSkeleton"]')""",
        timeout=timeout_ms,
        polling=250,
    )
    page.wait_for_timeout(500)


def _assert_no_exception(page, name: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()[:2000]}"
    assert page.get_by_text("Traceback").count() == 0, name


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the CLI and the Streamlit server it started (its own process group, started for this test)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.time() + wait
        while time.time() < deadline:  # the server child may outlive the CLI parent for a moment
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@contextlib.contextmanager
def app_in_browser(project: Path, path: str, height: int = 1100) -> Iterator:
    """The app served for ``project`` (``cocolens visualise`` in its own process group) and a
    chromium page opened on ``path`` after the root, both rendered; browser and server stop after."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cocolens = Path(sys.executable).with_name("cocolens")
    proc = subprocess.Popen(
        [str(cocolens), "visualise", "--project", str(project), "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _wait_healthy(base, proc)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": height})
            for url in (f"{base}/", f"{base}/{path}"):
                page.goto(url, wait_until="domcontentloaded")
                _wait_rendered(page)
            yield page
            browser.close()
    finally:
        _stop_group(proc)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fruits = shared("fruits_nuts")
    base = tmp_path_factory.mktemp("e2e")
    root = base / "project"
    import_coco(fruits / "images", fruits / "annotations.json", root, dataset="fruits", workers=2)
    images, ann = write_small_coco(base / "small", n_images=4)
    import_coco(images, ann, root, dataset="squares", workers=1)
    return root


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_every_page_renders_then_tag_and_export(project: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install playwright)"
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cocolens = Path(sys.executable).with_name("cocolens")
    command = [str(cocolens), "visualise", "--project", str(project), "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _wait_healthy(base, proc)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Open the root first, as a user following the printed URL does: Streamlit runs app.py (the
            # sidebar and st.navigation) there; a deep link as the very first request of a fresh server is
            # served in legacy pages/ mode without app.py (see the report on pages/ beside app.py).
            for path in _page_paths():
                page.goto(
                    f"{base}/" if path == "summary" else f"{base}/{path}", wait_until="domcontentloaded"
                )
                _wait_rendered(page)
                page.screenshot(path=str(SCREENSHOTS / f"{path}.png"), full_page=True)
                _assert_no_exception(page, path)
                sidebar = page.get_by_role("textbox", name="Project folder")
                sidebar.wait_for(timeout=30_000)  # app.py ran: sidebar and navigation, not legacy pages/ mode

            page.goto(f"{base}/export?f_ds=fruits&f_cls=date", wait_until="domcontentloaded")
            _wait_rendered(page)
            tag_box = page.get_by_role("textbox", name="Tag", exact=True)
            tag_box.fill("e2e_review")
            tag_box.press("Enter")
            _wait_rendered(page)
            page.get_by_role("button", name="Tag all…", exact=True).click()
            _wait_rendered(page)
            page.get_by_text(re.compile(r"Tag all [\d,]+ matching images with 'e2e_review'\?")).wait_for(
                timeout=60_000
            )
            page.get_by_role(
                "button", name="Confirm", exact=True
            ).click()  # tag all asks first, with the count
            page.get_by_text("Tagged").wait_for(timeout=60_000)
            _wait_rendered(page)
            page.get_by_role("button", name="Export", exact=True).click()
            page.get_by_text("Wrote").wait_for(timeout=60_000)
            _wait_rendered(page)
            _assert_no_exception(page, "export after tag and export")
            page.screenshot(path=str(SCREENSHOTS / "export_done.png"), full_page=True)
            browser.close()
    finally:
        _stop_group(proc)
    tags = tagged(project, "e2e_review")
    assert len(tags) > 0 and set(tags["dataset"]) == {"fruits"}
    exports = list((project / "exports").glob("fruits-*.json"))
    assert len(exports) == 1
