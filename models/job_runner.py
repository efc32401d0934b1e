"""Background training process: ``python -m models.job_runner JOB_DIR``.

Started by models.jobs.launch in its own session, with stdout/stderr going to JOB_DIR/log.txt.
SIGTERM (the cancel fallback) becomes a clean 'cancelled'; anything else that goes wrong ends the
job as 'failed' with its traceback in job.json (written by models.jobs.run_job).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from models import jobs

    signal.signal(signal.SIGTERM, jobs._raise_cancelled)  # first: a cancel may come at once
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m models.job_runner JOB_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    job_dir = Path(args[0])
    logging.getLogger("cocolens.job").info("job %s starting (pid %s)", job_dir.name, os.getpid())

    def log_event(event: dict) -> None:
        kind = event.get("event")
        if kind == "step":
            logging.getLogger("cocolens.job").info(
                "epoch %s step %s: loss %.4f", event["epoch"], event["step"], event["loss"]
            )
        elif kind == "epoch":
            val = event.get("val") or {}
            logging.getLogger("cocolens.job").info(
                "epoch %s: loss %.4f, lr %.2e%s",
                event["epoch"],
                event["losses"].get("loss", float("nan")),
                event["lr"],
                "".join(f", val {k} AP {v['AP']:.4f}" for k, v in val.items()),
            )
        elif kind == "done":
            logging.getLogger("cocolens.job").info(
                "training done: best epoch %s, %s epochs run, stopped=%s",
                event.get("best_epoch"),
                event.get("epochs_run"),
                event.get("stopped"),
            )

    try:
        job = jobs.run_job(job_dir, log_event)
    except BaseException:
        logging.getLogger("cocolens.job").exception("job failed")
        return 1
    logging.getLogger("cocolens.job").info("job %s ended: %s", job["id"], job["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
