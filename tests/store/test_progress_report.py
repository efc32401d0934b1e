"""Issue 17: progress in a log is a line every few seconds with sane rates; a terminal gets tqdm bars."""

from __future__ import annotations

import io
import re

from store.progress_report import ProgressReport


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_line_every_few_seconds_not_one_per_image():
    out, clock = io.StringIO(), Clock()
    report = ProgressReport(stream=out, interval=5.0, clock=clock, tty=False)
    report("images", 0, 20_000)
    for done in range(1, 20_001):
        clock.now += 0.001  # 1,000 images/s for 20 s
        report("images", done, 20_000)
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6, lines  # the start, one per 5 s, the end
    assert lines[0] == "images: 0/20000 (0%)" and lines[-1].startswith("images: 20000/20000 (100%)")
    rates = [float(m.group(1)) for m in map(re.compile(r", ([0-9.]+)/s$").search, lines) if m]
    assert rates and all(abs(rate - 1000.0) < 1.0 for rate in rates), lines


def test_a_stage_settled_at_once_reports_no_rate_and_may_start_again():
    out, clock = io.StringIO(), Clock()
    report = ProgressReport(stream=out, interval=5.0, clock=clock, tty=False)
    report("images", 20_000, 20_000)  # 20,000 missing images settled in one sweep
    report("images", 20_000, 20_000)  # the same final call again prints nothing
    report("images", 0, 10)  # the next dataset of a demo build
    clock.now += 0.5
    report("images", 10, 10)
    assert out.getvalue().splitlines() == [
        "images: 20000/20000 (100%)",
        "images: 0/10 (0%)",
        "images: 10/10 (100%)",
    ]


def test_a_terminal_bar_starts_at_what_was_already_done():
    out = io.StringIO()
    report = ProgressReport(stream=out, tty=True)
    report("images", 20_000, 20_000)  # settled at once (all missing): a line, no bar, no rate
    assert out.getvalue() == "images: 20000/20000 (100%)\n"
    report("images", 5_000, 10_000)  # resumed: half done before this run
    report("images", 5_001, 10_000)
    bar = report._bars["images"]
    assert bar.format_dict["initial"] == 5_000 and bar.n == 5_001  # the resumed half is no progress
    report("images", 10_000, 10_000)
    assert "images" not in report._bars and "10000/10000" in out.getvalue()


def test_a_postfix_follows_the_count_and_a_final_call_with_one_still_prints():
    out, clock = io.StringIO(), Clock()
    report = ProgressReport(stream=out, interval=5.0, clock=clock, tty=False)
    report("train", 2, 2, epoch=1, loss="0.500")  # the last training step ends the stage
    report("train", 2, 2)  # the same final call without news: nothing
    report("train", 2, 2, epoch=1, bbox_AP="0.250")  # the epoch's evaluation comes after it
    assert out.getvalue().splitlines() == [
        "train: 2/2 (100%), epoch 1, loss 0.500",
        "train: 2/2 (100%), epoch 1, bbox_AP 0.250",
    ]


def test_a_terminal_bar_shows_the_postfix():
    out = io.StringIO()
    report = ProgressReport(stream=out, tty=True)
    report("train", 0, 4)
    report("train", 1, 4, loss="0.900")
    assert report._bars["train"].postfix == "loss=0.900"
