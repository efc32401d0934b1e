"""Background page action: ``python -m models.action_runner JOB_DIR`` (see models.actions).

Started by models.actions.start_action in its own session, with stdout/stderr going to
JOB_DIR/log.txt. SIGTERM (the cancel fallback) becomes a clean 'cancelled'; anything else that goes
wrong ends the job as 'failed' with its traceback in job.json (written by models.actions.run_action).
"""

from __future__ import annotations

import sys

from models.job_runner import runner_main


def main(argv: list[str] | None = None) -> int:
    from models.actions import run_action

    return runner_main(argv, "action", run_action)


if __name__ == "__main__":
    sys.exit(main())
