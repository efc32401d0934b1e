"""Browser benchmark: what a user waits for in a real browser, cold and warm, on every page.

bench/app_bench.py times the Python side of a render (AppTest). This one starts the real server
(``cocolens visualise``) on the same synthetic project (bench/app_bench.py ``build_project``, summaries
prewarmed as an import leaves them) and drives headless Debian chromium with Playwright:

* cold: a fresh server, then each page app.py lists opened once by its URL, each in a new browser
  context (no cache, no cookies, a new Streamlit session), in app.py's order, the root first (a deep
  link as the very first request of a fresh server is served in legacy pages/ mode). This pays the
  server's first import of what each page needs and its first queries;
* warm: then each page reloaded ``--reloads`` times in its context (a new session on a server that
  has everything imported and cached: what every later visit costs).

A load is timed from ``page.goto`` / ``page.reload`` to the moment the page has a title and neither
Streamlit's running indicator nor a placeholder skeleton has been seen for SETTLE_S (the time is
that of the first such moment; the settle wait itself is not counted), with the CPU seconds the server's processes used meanwhile
and by the browser's (chromium, Playwright's driver): on a loaded machine the fairer figures. The machine's load average
is recorded before and after: on a shared 2-core machine it moves every figure.

Run:  .venv/bin/python bench/browser_bench.py --images 5000 --objects 41000 [--keep DIR] [--reloads 3]
      [--pages data_quality,compare] [--screenshots DIR]
Prints one JSON line; docs/BENCHMARKS.md ("App in a browser") records the figures.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import counts_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import app_bench  # noqa: E402

from tests.test_browser_e2e import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    _page_paths,
    _stop_group,
    _wait_healthy,
)

SETTLE_S = 0.6
# Streamlit scrolls its main area inside a viewport-high box, so a "full page" screenshot shows only
# the viewport: the screenshot grows the viewport to the main area's content height instead.
FULL_HEIGHT = """() => Math.max(1000, ...[...document.querySelectorAll(
                 '[data-testid="stMain"], [data-testid="stMainBlockContainer"]')].map(e => e.scrollHeight + 200))"""
RUNNING = """() => !!document.querySelector('h1')
                 && !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-testid="stSkeleton"]')"""


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid`` (the
    server: the CLI and the Streamlit process it starts). On a loaded shared machine this, not the wall
    time, says what a page costs the server."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants_cpu_s(root_pid: int, skip_pgid: int) -> float:
    """CPU seconds of the live descendants of ``root_pid`` outside process group ``skip_pgid``: here the
    browser (chromium's processes, started by Playwright's driver), without the server."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        if int(fields[2]) != skip_pgid:
            cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, seconds in cpu.items():
        ancestor = parents.get(pid)
        while ancestor and ancestor != root_pid:
            ancestor = parents.get(ancestor)
        if ancestor == root_pid:
            total += seconds
    return total


def _delta(seconds: float) -> float | None:
    """A CPU difference; None when negative (a browser process ended during the load and took its
    CPU seconds out of the sum: the figure would be meaningless)."""
    return round(seconds, 2) if seconds >= 0 else None


def timed_load(page, action, timeout_s: float = 180.0) -> float:
    """Seconds from starting ``action`` (a goto or reload) to a settled render (see the module docstring)."""
    start = time.perf_counter()
    action()
    settled_at: float | None = None
    deadline = start + timeout_s
    while time.perf_counter() < deadline:
        if page.evaluate(RUNNING):
            now = time.perf_counter()
            if settled_at is None:
                settled_at = now
            elif now - settled_at >= SETTLE_S:
                return round(settled_at - start, 3)
        else:
            settled_at = None
        page.wait_for_timeout(50)
    raise TimeoutError(f"page not rendered after {timeout_s:.0f} s: {page.url}")


def renderer_breakdown(session) -> dict[str, float]:
    """Chromium's own split of the page's main-thread time (CDP ``Performance.getMetrics``: script,
    layout, style recalculation, all tasks), seconds since the document loaded (a reload starts a new
    one), read once the reload has settled: it says whether the browser's CPU went to JavaScript
    (Plotly, React) or to layout and style (many elements), which is what decides the fix."""
    metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
    return {
        k: metrics.get(k, 0.0)
        for k in ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration")
    }


def measure(
    project: Path, reloads: int, only: list[str] | None = None, screenshots: Path | None = None
) -> dict[str, dict[str, object]]:
    """Cold load and ``reloads`` warm reloads of every page (or of ``only``, after an unreported cold
    load of the root so the server's first imports stay out of their figures); with ``screenshots``,
    a full-page PNG of each page after its last reload."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cocolens = Path(sys.executable).with_name("cocolens")
    server = subprocess.Popen(
        [str(cocolens), "visualise", "--project", str(project), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    results: dict[str, dict[str, object]] = {}
    try:
        started = time.perf_counter()
        _wait_healthy(base, server)
        server_start = round(time.perf_counter() - started, 2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            paths = _page_paths()
            if only:
                unknown = sorted(set(only) - set(paths))
                if unknown:
                    raise SystemExit(f"unknown pages {unknown}; app.py lists {paths}")
                warmup = browser.new_context()
                timed_load(warmup.new_page(), lambda: warmup.pages[0].goto(f"{base}/", wait_until="commit"))
                warmup.close()
                paths = [p for p in paths if p in only]
            for path in paths:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                session = context.new_cdp_session(page)
                session.send("Performance.enable")
                url = f"{base}/" if path == "summary" else f"{base}/{path}"
                me = os.getpid()
                cpu, browser_cpu = group_cpu_s(server.pid), descendants_cpu_s(me, server.pid)
                cold = timed_load(page, lambda page=page, url=url: page.goto(url, wait_until="commit"))
                cold_cpu = group_cpu_s(server.pid) - cpu
                cold_browser = _delta(descendants_cpu_s(me, server.pid) - browser_cpu)
                errors = page.locator('[data-testid="stException"]').count()
                warm, warm_cpu, warm_browser, warm_split = [], [], [], []
                for _ in range(reloads):
                    cpu, browser_cpu = group_cpu_s(server.pid), descendants_cpu_s(me, server.pid)
                    warm.append(timed_load(page, lambda page=page: page.reload(wait_until="commit")))
                    warm_cpu.append(round(group_cpu_s(server.pid) - cpu, 2))
                    warm_browser.append(_delta(descendants_cpu_s(me, server.pid) - browser_cpu))
                    warm_split.append(
                        {
                            k.removesuffix("Duration").lower(): round(v, 2)
                            for k, v in renderer_breakdown(session).items()
                        }
                    )
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    page.set_viewport_size({"width": 1400, "height": min(page.evaluate(FULL_HEIGHT), 12000)})
                    page.wait_for_timeout(1500)  # the charts redraw at the new size
                    page.screenshot(path=str(screenshots / f"{path}.png"))
                results[path] = {
                    "cold_s": cold,
                    "cold_server_cpu_s": round(cold_cpu, 2),
                    "cold_browser_cpu_s": cold_browser,
                    "warm_s": warm,
                    "warm_max_s": max(warm),
                    "warm_server_cpu_s": warm_cpu,
                    "warm_browser_cpu_s": warm_browser,
                    "warm_renderer_s": warm_split,
                    "exceptions": errors,
                }
                context.close()
            browser.close()
        results["_server"] = {"start_to_healthy_s": server_start}
    finally:
        _stop_group(server)
    return results


def main() -> None:
    parser = counts_parser(__doc__.split("\n\n")[0], images=5000, objects=41000, reloads=3)
    parser.add_argument("--keep", help="build (or reuse) the project in this folder and keep it")
    parser.add_argument("--pages", help="comma-separated page names (e.g. data_quality,compare); default all")
    parser.add_argument("--screenshots", help="save a full-page PNG of each page after its reloads here")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium not installed (apt-get install -y chromium)")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cocolens_browser_bench_"))
    try:
        if not (root / "project.json").is_file():
            app_bench.build_project(root, args.images, args.objects)
        prewarm_wall, _, _ = app_bench.prewarm(root)
        load_before = os.getloadavg()
        only = [p.strip() for p in args.pages.split(",") if p.strip()] if args.pages else None
        shots = Path(args.screenshots) if args.screenshots else None
        pages = measure(root, args.reloads, only, shots)
        load_after = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{platform.machine()}, {os.cpu_count()} vCPU",
                "images": args.images,
                "objects": args.objects,
                "prewarm_s": prewarm_wall,
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in load_after],
                "pages": pages,
            }
        )
    )


if __name__ == "__main__":
    main()
