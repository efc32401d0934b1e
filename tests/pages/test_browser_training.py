"""The Training page in a real browser: while a job changes state, the jobs table, the job picker and
the job's panel refresh together (AppTest cannot run a fragment's timer). Screenshot in
artifacts/screenshots/training_live.png."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import job_launch, job_state
from tests.models.test_jobs import make_project
from tests.models.tiny_configs import FAST
from tests.test_browser_e2e import (
    CHROMIUM,
    SCREENSHOTS,
    app_in_browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_table_picker_and_panel_agree_while_a_job_starts(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    folder = job_launch.create_job(
        project, "tr", "va", job_launch.prepare_config(None, **{**FAST, "epochs": 3}), "livenet"
    )
    job_state.update_job(folder, pid=helper.pid, pid_start=job_state.process_start_time(helper.pid))
    try:
        with app_in_browser(project, "training", height=1400) as page:
            picker = page.get_by_role("combobox", name="Job")
            assert picker.input_value().endswith("livenet · queued")
            job_state.update_job(
                folder, status="running", phase="training", started_at=time.time(), steps_per_epoch=4
            )
            now = time.time()
            for step in range(1, 4):
                event = {"event": "step", "epoch": 1, "step": step, "global_step": step, "loss": 2.0 / step,
                         "lr": 1e-4, "eta_s": 1.0, "time": now - 3 + step}  # fmt: skip
                job_state.append_progress(folder, event)
            status = page.get_by_test_id("stMetric").filter(has_text="Status")
            status.filter(has_text="running").wait_for(timeout=30_000)  # the panel refreshed by itself
            assert page.get_by_role("combobox", name="Job").input_value().endswith("livenet · running")
            eta = page.get_by_test_id("stMetric").filter(has_text="ETA (training)").inner_text()
            assert "measuring" not in eta, eta
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "training_live.png"), full_page=True)
    finally:
        helper.kill()
        helper.wait()
