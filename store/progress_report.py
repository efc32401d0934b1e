"""Progress of the long commands on stderr: a tqdm bar on a terminal, a plain line now and then otherwise.

Why: the import called ``tqdm.refresh()`` after every image, which in a log file (stderr not a
terminal) wrote one line per image, 20,000 lines for one import; and a bar created when a stage
was already partly done (resumed chunks, 20,000 missing images settled at once) measured that jump
over a few microseconds: "5368709.12it/s". Now a terminal gets tqdm bars that start at the count
already done (``initial``) and are advanced by ``update`` (tqdm's own ``mininterval`` throttles
them); anything else gets a line at most every ``interval`` seconds and one when a stage ends, with
a rate only once a second of that stage has been measured.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

LOG_INTERVAL_S = 5.0


class ProgressReport:
    """``report(stage, done, total)``: the callback the importers and embedders take."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.tty = self.stream.isatty() if tty is None else tty
        self._bars: dict[str, Any] = {}
        self._started: dict[str, tuple[float, int]] = {}  # stage → (time, done) when first seen
        self._last_line: dict[str, float] = {}
        self._just_finished: tuple[str, int] | None = None  # a repeated final call prints nothing

    def __call__(self, stage: str, done: int, total: int, **postfix: Any) -> None:
        """``done`` of ``total`` items of ``stage``; ``postfix`` (name → value, e.g. a training step's
        loss) is shown after the count. A repeated final call prints nothing unless it brings a postfix
        (the val AP of a training's last epoch comes after its last step)."""
        finished = done >= total
        if finished and self._just_finished == (stage, total) and not postfix:
            return
        self._just_finished = None
        if self.tty:
            self._bar(stage, done, total, postfix)
        else:
            self._line(stage, done, total, postfix)
        if finished:  # the same stage name may start again (the demo imports several datasets)
            self._just_finished = (stage, total)
            self._started.pop(stage, None)
            self._last_line.pop(stage, None)

    def _bar(self, stage: str, done: int, total: int, postfix: dict[str, Any]) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None and done >= total:  # settled at once: a bar would show an absurd rate
            self.stream.write(f"{stage}: {done}/{total} (100%){_postfix_text(postfix)}\n")
            self.stream.flush()
            return
        if bar is None:
            bar = self._bars[stage] = tqdm(
                total=total, initial=done, desc=stage, unit="it", file=self.stream, leave=True
            )
        if bar.total != total:
            bar.total = total
        if postfix:
            bar.set_postfix(postfix, refresh=done <= bar.n)
        if done > bar.n:
            bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[stage]

    def _line(self, stage: str, done: int, total: int, postfix: dict[str, Any]) -> None:
        now = self.clock()
        start = self._started.setdefault(stage, (now, done))
        last = self._last_line.get(stage)
        if done < total and last is not None and now - last < self.interval:
            return
        self._last_line[stage] = now
        percent = f" ({100.0 * done / total:.0f}%)" if total else ""
        elapsed = now - start[0]
        measured = elapsed >= 1.0 and done > start[1] and total >= 10  # no "0.3/s" for a 1-step stage
        rate = f", {(done - start[1]) / elapsed:.1f}/s" if measured else ""
        self.stream.write(f"{stage}: {done}/{total}{percent}{rate}{_postfix_text(postfix)}\n")
        self.stream.flush()


def _postfix_text(postfix: dict[str, Any]) -> str:
    return "".join(f", {name} {value}" for name, value in postfix.items())
