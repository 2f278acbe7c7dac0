"""tools/ismail_benchmark.py: the boxes and labels of the synthetic sets.
Run: /work/venv/bin/python -m pytest tools/tests (needs numpy and torch)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ismail_benchmark as ib  # noqa: E402


def test_every_layout_puts_its_box_where_it_says_with_the_shift_of_the_label():
    for layout, (steps, channels, t0, c0) in ib.LAYOUTS.items():
        x, y, boxes = ib.make_set(7, layout, "gaussian", 40)
        assert x.shape == (40, ib.STEPS, ib.CHANNELS) and set(y) == {0, 1}
        for xi, yi, (a, b, c, d) in zip(x, y, boxes):
            assert (b - a, d - c) == (steps, channels)
            if layout == "positional":
                assert a == ib.POSITIONAL_STARTS[yi]
            elif t0 is not None:
                assert (a, c) == (t0, c0)
            inside = xi[a:b, c:d].mean()
            outside = (xi.sum() - xi[a:b, c:d].sum()) / (xi.size - steps * channels)
            shift = 1.0 if (layout == "positional" or yi == 1) else -1.0
            # N(0, 1) noise: the box's mean is off by the shift, within 5 standard errors.
            assert abs(inside - outside - shift) < 5 / np.sqrt(steps * channels) + 5 / np.sqrt(xi.size)


def test_backgrounds_are_seeded_and_centred():
    for kind in ib.BACKGROUNDS:
        a = ib.background(np.random.default_rng(1), kind)
        b = ib.background(np.random.default_rng(1), kind)
        assert a.shape == (ib.STEPS, ib.CHANNELS) and np.array_equal(a, b)
        assert abs(a.mean()) < 0.5
