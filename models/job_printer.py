"""How a training job's progress events print: as a line in the runner's log (the Training page
shows its tail), and through the progress printer every long command shares
(store.progress_report.ProgressReport: bars on a terminal, a line now and then in a log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def log_line(event: dict[str, Any]) -> str | None:
    """The runner's log line of a step, epoch or done event; None for the other kinds."""
    kind = event.get("event")
    if kind == "step":
        return f"epoch {event['epoch']} step {event['step']}: loss {event['loss']:.4f}"
    if kind == "epoch":
        val = event.get("val") or {}
        loss = event["losses"].get("loss", float("nan"))
        aps = "".join(f", val {k} AP {v['AP']:.4f}" for k, v in val.items())
        return f"epoch {event['epoch']}: loss {loss:.4f}, lr {event['lr']:.2e}{aps}"
    if kind == "done":
        return (
            f"training done: best epoch {event.get('best_epoch')}, {event.get('epochs_run')} epochs run, "
            f"stopped={event.get('stopped')}"
        )
    return None


def report_event(report: Callable[..., None], event: dict[str, Any], epochs: int) -> None:
    """Show a job's progress event through ``report(stage, done, total, **postfix)``.

    event: as models.job_run.run_job passes it on (training events carry 'steps_per_epoch');
    epochs: the configured epoch count, so that the 'train' stage counts every step of the run.
    """
    kind = event.get("event")
    if kind == "step":
        total = epochs * int(event["steps_per_epoch"])
        report(
            "train",
            int(event["global_step"]),
            total,
            epoch=event["epoch"],
            loss=f"{event['loss']:.3f}",
            lr=f"{event['lr']:.1e}",
        )
    elif kind == "epoch" and "val" in event:
        val = event["val"]
        report(
            "train",
            int(event["epoch"]) * int(event["steps_per_epoch"]),
            epochs * int(event["steps_per_epoch"]),
            epoch=event["epoch"],
            bbox_AP=f"{val['bbox']['AP']:.3f}",
            segm_AP=f"{val['segm']['AP']:.3f}",
        )
    elif kind == "predict":
        report("predict", int(event["done"]), int(event["total"]))
