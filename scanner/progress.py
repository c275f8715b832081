"""One progress display per stage on stderr: done/total, rate and time left.

Stage functions report progress as the project's other progress hooks do, with a callable
``progress(done, total)`` (absolute counts of the stage's unit: rows, windows, items, models), and
the training stage also sends each network's current epoch line to a text callable. The CLI passes a
:class:`Progress`, which is both (``bar(done, total)``, ``bar.set_detail(line)``) and draws them. On a
terminal the display is one line redrawn in place (at most 5 times a second); elsewhere (a log file, a
Ray job's log) it prints a line at every tenth of the total and at least once a minute, so logs stay
short. Messages printed through :meth:`Progress.write` appear above the line.

Nothing here imports torch or ray.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: ``progress(done, total)``: what every stage function with a ``progress`` parameter calls.
ProgressFn = Callable[[int, int], None]


def tee(*fns: ProgressFn | None) -> ProgressFn | None:
    """One ``progress(done, total)`` that calls each of ``fns`` (None entries skipped; None if none is left)."""
    live = [f for f in fns if f is not None]
    if not live:
        return None

    def call(done: int, total: int) -> None:
        for f in live:
            f(done, total)

    return call


def counter(progress: ProgressFn | None, total: int, done: int = 0) -> Callable[[int], None]:
    """An ``add(n)`` that counts ``n`` more units done and calls ``progress(done, total)``.

    For loops that finish units one batch at a time; ``progress`` None gives a no-op.
    """
    state = [done]

    def add(n: int) -> None:
        state[0] += int(n)
        if progress is not None:
            progress(state[0], total)

    return add


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(per_s: float) -> str:
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


class Progress:
    """A progress display for one stage (see the module).

    Parameters
    ----------
    label : str
        Stage name, printed first (``predict``).
    unit : str
        What is counted (``rows``).
    total : int
        Units planned so far (each call may change it). Default 0.
    stream : text stream, optional
        Default ``sys.stderr``.
    tty : bool, optional
        Redraw one line in place. Default: whether ``stream`` is a terminal.
    every_s : float
        Off a terminal, the longest time between two printed lines. Default 60.
    """

    def __init__(
        self,
        label: str,
        unit: str,
        total: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float = 60.0,
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = int(total)
        self.done = 0
        self.detail = ""
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self._t0 = time.perf_counter()
        self._drawn = 0.0  # time of the last draw
        self._step = -1  # last tenth printed (off a terminal)
        self._shown = False  # a line without its newline is on screen (terminal)
        self._printed: tuple[int, int] = (-1, -1)  # (done, total) of the last line printed whole
        self._closed = False
        self._base: int | None = None  # units done at the first report (resumed work): not in the rate
        self._lock = threading.Lock()

    # ---- what stages call ----------------------------------------------------------------------
    def __call__(self, done: int, total: int) -> None:
        """``done`` of ``total`` units are done (absolute counts; either may grow between calls)."""
        with self._lock:
            self.done, total = int(done), int(total)
            if self._base is None:
                self._base = self.done
            if total != self.total and total:  # a new total lowers the tenth reached: print from there
                self._step = min(self._step, int(10 * self.done / total))
            self.total = max(total, self.done)
            self._draw()

    def set_detail(self, text: str) -> None:
        """What is being done now (shown after the counts)."""
        with self._lock:
            self.detail = text
            if self.tty:
                self._draw()

    # ---- output ----------------------------------------------------------------------------------
    def line(self) -> str:
        """The current state: ``predict: 12,000/71,586 rows (17%), 2,310 rows/s, 0:26 left``."""
        elapsed = time.perf_counter() - self._t0
        text = f"{self.label}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        new = self.done - (self._base or 0)
        if new > 0 and elapsed > 0:
            rate = new / elapsed
            text += f", {_rate(rate)} {self.unit}/s"
            if self.total > self.done:
                text += f", {_duration((self.total - self.done) / rate)} left"
            elif self.total:
                text += f", {_duration(elapsed)}"
        if self.detail:
            text += f"; {self.detail}"
        return text

    def write(self, message: str) -> None:
        """Print ``message`` on its own line(s), above the progress line."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
            self.stream.write(message.rstrip("\n") + "\n")
            if self._shown:
                self.stream.write(self.line())
            self.stream.flush()

    def close(self, summary: str | None = None) -> None:
        """Print the final state (unless it is on screen already) and ``summary`` below it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._shown:
                self.stream.write("\r\x1b[K" + self.line() + "\n")
            elif (self.done or self.total) and self._printed != (self.done, self.total):
                self.stream.write(self.line() + "\n")
            self._shown = False
            if summary:
                self.stream.write(summary.rstrip("\n") + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _draw(self) -> None:
        now = time.perf_counter()
        complete = self.total > 0 and self.done >= self.total
        if self.tty:
            if complete:  # finished (for now): the line ends, so that other output starts below it
                if self._printed != (self.done, self.total):
                    self.stream.write("\r\x1b[K" + self.line() + "\n")
                    self._printed = (self.done, self.total)
                self._shown = False
            elif now - self._drawn >= 0.2:
                self.stream.write("\r\x1b[K" + self.line())
                self._drawn, self._shown = now, True
            self.stream.flush()
            return
        step = int(10 * self.done / self.total) if self.total else 0
        if step > self._step or now - self._drawn >= self.every_s:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._step, self._drawn, self._printed = step, now, (self.done, self.total)
