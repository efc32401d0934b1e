"""models.job_printer: the runner's log lines and the foreground progress of a job's events."""

from __future__ import annotations

from models.job_printer import log_line, report_event

VAL = {"bbox": {"AP": 0.25}, "segm": {"AP": 0.125}}


def test_log_lines_of_steps_epochs_and_the_end():
    assert log_line({"event": "step", "epoch": 2, "step": 3, "loss": 0.5}) == "epoch 2 step 3: loss 0.5000"
    epoch = {"event": "epoch", "epoch": 2, "losses": {"loss": 0.4}, "lr": 1e-4, "val": VAL}
    assert log_line(epoch) == "epoch 2: loss 0.4000, lr 1.00e-04, val bbox AP 0.2500, val segm AP 0.1250"
    assert log_line({**epoch, "val": None}) == "epoch 2: loss 0.4000, lr 1.00e-04"  # not evaluated
    done = {"event": "done", "best_epoch": 2, "epochs_run": 3, "stopped": False}
    assert log_line(done) == "training done: best epoch 2, 3 epochs run, stopped=False"
    assert log_line({"event": "predict", "done": 1, "total": 2}) is None


def test_report_event_counts_every_step_of_the_run_and_shows_loss_then_ap():
    calls = []

    def report(stage, done, total, **postfix):
        calls.append((stage, done, total, postfix))

    step = {"event": "step", "epoch": 2, "step": 1, "global_step": 4, "loss": 0.5, "lr": 1e-4}
    report_event(report, {**step, "steps_per_epoch": 3}, epochs=5)
    report_event(report, {"event": "epoch", "epoch": 2, "val": VAL, "steps_per_epoch": 3}, epochs=5)
    report_event(report, {"event": "epoch", "epoch": 3, "steps_per_epoch": 3}, epochs=5)  # no val: nothing
    report_event(report, {"event": "predict", "done": 4, "total": 8}, epochs=5)
    assert calls == [
        ("train", 4, 15, {"epoch": 2, "loss": "0.500", "lr": "1.0e-04"}),
        ("train", 6, 15, {"epoch": 2, "bbox_AP": "0.250", "segm_AP": "0.125"}),
        ("predict", 4, 8, {}),
    ]
