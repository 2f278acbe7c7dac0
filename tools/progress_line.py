"""One line of progress for the training tools, as `lrp` draws its own: the
steps done of all, their rate and the time left, redrawn in place on stderr.
Nothing is drawn when stderr is not a terminal (a pipe, a log file) or when
TERM is unset or `dumb`, so logs stay as they were.

    bar = Progress(args.steps, "steps", "train")
    for step in ...:
        ...
        bar.advance()
        if step % args.eval_every == 0:
            bar.clear()          # the line goes before anything is printed
            print(...)
    bar.close()

Python 3 standard library only.
"""

import os
import sys
import time

# Redraws per second, at most: a step may take a millisecond.
REDRAWS_PER_SECOND = 5


def shows_progress(stream):
    """Whether `stream` is a terminal that can redraw a line."""
    term = os.environ.get("TERM", "")
    return hasattr(stream, "isatty") and stream.isatty() and term not in ("", "dumb")


def duration(seconds):
    """`seconds` in words for a person: `45s`, `3m 05s`, `1h 02m`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class Progress:
    """`total` units of work (`unit`: "steps", "batches"), named `what`."""

    def __init__(self, total, unit="steps", what="train", stream=None, clock=time.monotonic):
        self.total = max(1, int(total))
        self.unit = unit
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        self.enabled = shows_progress(self.stream)
        self.clock = clock
        self.started = clock()
        self.drawn_at = None
        self.done = 0

    def line(self):
        """The text of the line: count, rate and time left."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = duration(left) if left is not None else "?"
        return f"{self.what} {self.done}/{self.total} {self.unit}, {rate:.1f}/s, ETA {eta}"

    def advance(self, n=1):
        """`n` more units done; redraws at most REDRAWS_PER_SECOND times a second."""
        self.done = min(self.total, self.done + n)
        if not self.enabled:
            return
        now = self.clock()
        if self.drawn_at is None or now - self.drawn_at >= 1 / REDRAWS_PER_SECOND or self.done == self.total:
            self.drawn_at = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def clear(self):
        """Erases the line (before printing); the next advance draws it again."""
        if self.enabled and self.drawn_at is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn_at = None

    def close(self):
        """The work is over: the line is erased."""
        self.clear()
