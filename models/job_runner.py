"""Background training process: ``python -m models.job_runner JOB_DIR``.

Started by models.job_launch.launch in its own session, with stdout/stderr going to JOB_DIR/log.txt.
SIGTERM (the cancel fallback) becomes a clean 'cancelled'; anything else that goes wrong ends the
job as 'failed' with its traceback in job.json (written by models.job_run.run_job).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metrics.passive_openmp  # noqa: F401  (before torch loads: OpenMP threads sleep, not spin)
from models.job_state import raise_cancelled


def runner_main(argv: list[str] | None, what: str, run: Callable[[Path], dict[str, Any]]) -> int:
    """The body of a runner process (training job or page action): run the job folder named by the
    one argument to its end, logging its start and end; 0 when it ended (succeeded, failed in a
    recorded way or cancelled is in job.json), 1 when ``run`` raised, 2 on a bad command line.

    what: 'job' or 'action', the word of the log lines and of the logger 'cocolens.WHAT'.
    """
    signal.signal(signal.SIGTERM, raise_cancelled)  # first: a cancel may come at once
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m models.{what}_runner JOB_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    log = logging.getLogger(f"cocolens.{what}")
    job_dir = Path(args[0])
    log.info("%s %s starting (pid %s)", what, job_dir.name, os.getpid())
    try:
        job = run(job_dir)
    except BaseException:
        log.exception("%s failed", what)
        return 1
    log.info("%s %s ended: %s", what, job["id"], job["status"])
    return 0


def main(argv: list[str] | None = None) -> int:
    from models.job_printer import log_line
    from models.job_run import run_job

    log = logging.getLogger("cocolens.job")

    def log_event(event: dict[str, Any]) -> None:
        line = log_line(event)
        if line is not None:
            log.info("%s", line)

    return runner_main(argv, "job", lambda job_dir: run_job(job_dir, log_event))


if __name__ == "__main__":
    sys.exit(main())
