"""tools/progress_line.py: a rate and the time left on a terminal, nothing
elsewhere. Run: python3 -m pytest tools/tests (standard library and pytest)."""

import io
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from progress_line import Progress, duration  # noqa: E402


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    """A clock the test moves."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_terminal_gets_the_count_the_rate_and_the_time_left(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    stream, clock = Terminal(), Clock()
    bar = Progress(100, "steps", "train", stream=stream, clock=clock)
    clock.now += 2.0
    bar.advance(10)
    # 10 steps in 2 s: 5/s, 90 left: 18 s.
    assert stream.getvalue() == "\rtrain 10/100 steps, 5.0/s, ETA 18s\x1b[K"
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_redraws_are_at_most_five_a_second(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    stream, clock = Terminal(), Clock()
    bar = Progress(1000, stream=stream, clock=clock)
    for _ in range(50):
        clock.now += 0.001
        bar.advance()
    assert stream.getvalue().count("\r") == 1


def test_nothing_in_a_pipe_or_on_a_dumb_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    pipe = io.StringIO()
    bar = Progress(3, stream=pipe)
    bar.advance(3)
    bar.close()
    assert pipe.getvalue() == ""
    monkeypatch.setenv("TERM", "dumb")
    dumb = Terminal()
    bar = Progress(3, stream=dumb)
    bar.advance(3)
    assert dumb.getvalue() == ""


def test_durations_read_as_words():
    assert [duration(s) for s in (0.4, 45, 185, 3720)] == ["0s", "45s", "3m 05s", "1h 02m"]
