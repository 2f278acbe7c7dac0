"""The READMEs' Python examples run: each ```python block of lrp-py/README.md
in a fresh interpreter (the Ray one only where Ray is installed, as
test_ray), and the repository README's "your own PyTorch model" from the
repository's root (only where torch is installed)."""

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


ROOT = Path(__file__).resolve().parents[2]
ROOT_BLOCKS = re.findall(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(encoding="utf8"), flags=re.S | re.M)


def test_the_repository_readme_has_its_three_examples():
    assert len(ROOT_BLOCKS) == 3
    assert "from_torch" in ROOT_BLOCKS[1] and len(ROOT_BLOCKS[1].splitlines()) <= 10
    assert "CnnLstm" in ROOT_BLOCKS[2] and len(ROOT_BLOCKS[2].splitlines()) <= 10


def test_the_repository_readme_saves_the_cnn_lstm_it_explains(tmp_path):
    """The time-series example, run from the repository's root: the
    directory it saves is the one the README's shell command explains,
    file for file."""
    pytest.importorskip("torch")
    saved = tmp_path / "my-cnn-lstm"
    block = ROOT_BLOCKS[2].replace('"my-cnn-lstm"', repr(str(saved)))
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    shipped = ROOT / "tests" / "fixtures" / "cnn-lstm" / "model"
    names = sorted(p.name for p in shipped.iterdir())
    assert sorted(p.name for p in saved.iterdir()) == names
    for name in names:
        assert (saved / name).read_bytes() == (shipped / name).read_bytes(), name


def test_the_repository_readme_explains_your_own_pytorch_model(tmp_path):
    """Run from the repository's root, as the README says; the model it
    saves is read by the `lrp` binary and gives the same relevance."""
    pytest.importorskip("torch")
    block = ROOT_BLOCKS[1].replace('"my-model"', repr(str(tmp_path / "my-model")))
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e[+-]?\d+)?", done.stdout)]
    assert len(printed) == 5, done.stdout
    lrp = os.environ.get("LRP_BIN")
    if lrp:
        import json

        cli = subprocess.run(
            [lrp, "explain", "--model", str(tmp_path / "my-model"), "--format", "json", "a fine and moving film"],
            capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        relevance = json.loads(cli.stdout)["token_relevance"]
        assert relevance == pytest.approx(printed, rel=1e-6, abs=1e-8)
