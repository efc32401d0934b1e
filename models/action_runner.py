"""Background page action: ``python -m models.action_runner JOB_DIR`` (see models.actions).

Started by models.actions.start_action in its own session, with stdout/stderr going to
JOB_DIR/log.txt. SIGTERM (the cancel fallback) becomes a clean 'cancelled'; anything else that goes
wrong ends the job as 'failed' with its traceback in job.json (written by models.actions.run_action).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from models import actions, jobs

    signal.signal(signal.SIGTERM, jobs._raise_cancelled)  # first: a cancel may come at once
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m models.action_runner JOB_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    log = logging.getLogger("cocolens.action")
    job_dir = Path(args[0])
    log.info("action %s starting (pid %s)", job_dir.name, os.getpid())
    try:
        job = actions.run_action(job_dir)
    except BaseException:
        log.exception("action failed")
        return 1
    log.info("action %s ended: %s", job["id"], job["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
