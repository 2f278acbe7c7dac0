"""Shared helpers of the lrp_rnn tests: the repository's fixtures, the real
`lrp` binary (whose JSON the Python API must reproduce) and a tolerance
check with the meaning of the Rust tests' `assert_close`."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden"


def golden_cases():
    """The golden cases of tests/fixtures/golden/cases.json."""
    return json.loads((GOLDEN / "cases.json").read_text())["cases"]


def lrp_binary() -> Path:
    """The `lrp` binary: $LRP_BIN, else target/release/lrp (build it with
    `cargo build --release -p lrp-cli`). Missing is a failure, not a skip."""
    path = Path(os.environ.get("LRP_BIN", REPO / "target" / "release" / "lrp"))
    if not path.is_file():
        pytest.fail(f"no lrp binary at {path}: run `cargo build --release -p lrp-cli` or set LRP_BIN")
    return path


def run_lrp(*args, check=True):
    """Runs `lrp ARGS`; returns the completed process (text mode)."""
    done = subprocess.run([str(lrp_binary()), *map(str, args)], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"lrp {' '.join(map(str, args))} failed: {done.stderr}")
    return done


def lrp_json_lines(*args):
    """The JSON objects `lrp ARGS` prints, one a line."""
    return [json.loads(line) for line in run_lrp(*args).stdout.splitlines()]


def lrp_error(*args) -> str:
    """The message of the one error line `lrp ARGS` prints (without `error: `)."""
    done = run_lrp(*args, check=False)
    assert done.returncode != 0 and done.stdout == "", (done.returncode, done.stdout)
    line = done.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("error: "), line
    return line[len("error: "):]


def assert_close(what, got, want, rtol):
    """`got` equals `want` within `rtol` relative to each wanted value, with a
    floor of 1e-6 of the largest (as the Rust tests' assert_close)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.size == 0:
        return
    scale = np.abs(want).max() * 1e-6
    allowed = rtol * np.maximum(np.abs(want), scale)
    bad = ~(np.abs(got - want) <= allowed)
    assert not bad.any(), f"{what}: {bad.sum()} of {want.size} differ, first at {np.argmax(bad)}: " \
        f"got {got[bad][0]!r} want {want[bad][0]!r}"


def sst_sentences(name="test"):
    """The sentences of tests/fixtures/sst/NAME.txt (treebank lines), as text:
    the leaves of each tree joined by spaces."""
    import re

    leaf = re.compile(r"\(\d+ ([^()]+)\)")
    lines = (FIXTURES / "sst" / f"{name}.txt").read_text(encoding="utf8").splitlines()
    return [" ".join(leaf.findall(line)) for line in lines if line.strip()]


def import_tool(name):
    """The module tools/NAME.py (which may need torch: skip first)."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)
