"""lrp-py/README.md's Python examples run: each ```python block in a fresh
interpreter (the Ray one only where Ray is installed, as test_ray)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf8"), flags=re.S | re.M)


def test_the_readme_has_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{k}" for k in range(len(BLOCKS))])
def test_a_readme_example_runs(block, tmp_path):
    if "import ray" in block and not os.environ.get("CI"):
        pytest.importorskip("ray")
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr
