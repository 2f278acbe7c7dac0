"""A PyTorch CNN + LSTM through from_torch (issue 28, item 2): the
documented shape (nn.Conv1d / nn.ReLU / nn.MaxPool1d over time on a
[batch, time, channels] input, nn.LSTM(batch_first=True), nn.Linear on the
last state) is read into a model whose explanation of a CSV's rows equals
`lrp explain --vectors FILE.csv`'s; save() writes the directory
tools/cnn_lstm.py shipped; a front end lrp does not model is refused in one
line naming the layer."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO, assert_close, lrp_json_lines

import lrp_rnn

CNN = FIXTURES / "cnn-lstm"


def test_the_saved_directory_explains_the_csv_as_the_cli():
    """Without torch: the directory from_torch saved (tools/cnn_lstm.py)."""
    x = np.loadtxt(CNN / "series.csv", delimiter=",", skiprows=1)
    (report,) = lrp_json_lines(
        "explain", "--model", CNN / "model", "--vectors", CNN / "series.csv", "--per-dimension", "--format", "json",
    )
    e = lrp_rnn.Model.load(CNN / "model").explain(x, per_dimension=True)
    assert_close("input relevance", e.input_relevance, report["input_relevance"], 1e-12)
    expected = json.loads((CNN / "expected.json").read_text())["scores"]
    assert_close("PyTorch's logits", e.scores, expected, 1e-12)


torch = pytest.importorskip("torch")
nn = torch.nn


def cnn_lstm():
    """tools/cnn_lstm.py's network with the trained weights it shipped."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from cnn_lstm import CnnLstm
    finally:
        sys.path.pop(0)
    net = CnnLstm().double()
    net.load_state_dict(torch.load(CNN / "state_dict.pt"))
    return net.eval()


def test_from_torch_on_a_cnn_lstm_equals_the_cli_on_the_csv():
    net = cnn_lstm()
    model = lrp_rnn.Model.from_torch(net, trust_forward=True, labels=["flat", "bump"])
    assert [layer["kind"] for layer in model.config["front"]] == ["conv1d", "relu", "maxpool1d", "conv1d", "relu"]
    x = np.loadtxt(CNN / "series.csv", delimiter=",", skiprows=1)
    (report,) = lrp_json_lines(
        "explain", "--model", CNN / "model", "--vectors", CNN / "series.csv", "--per-dimension", "--format", "json",
    )
    e = model.explain(x, per_dimension=True)
    assert e.input_relevance.shape == (48, 3)
    assert_close("input relevance", e.input_relevance, report["input_relevance"], 1e-12)
    assert_close("scores", e.scores, report["scores"], 1e-12)
    # PyTorch's own logits for the same rows.
    with torch.no_grad():
        logits = net(torch.tensor(x)[None])[0].numpy()
    assert_close("PyTorch's logits", e.scores, logits, 1e-12)
    assert report["channels"] == ["pressure", "flow", "temperature"]


def test_save_writes_the_shipped_directory(tmp_path):
    model = lrp_rnn.Model.from_torch(cnn_lstm(), trust_forward=True, labels=["flat", "bump"])
    model.save(tmp_path / "saved")
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "saved" / name).read_bytes() == (CNN / "model" / name).read_bytes(), name
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["front"][2] == {"kind": "maxpool1d", "kernel_size": 2, "stride": 2, "padding": 0, "dilation": 1}


class Front(nn.Module):
    """A front end of `layers` over time, an LSTM and a head on its last state."""

    def __init__(self, *layers, width=4):
        super().__init__()
        self.front = nn.Sequential(*layers)
        self.lstm = nn.LSTM(width, 3, batch_first=True)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        out, _ = self.lstm(self.front(x.transpose(1, 2)).transpose(1, 2))
        return self.head(out[:, -1])


@pytest.mark.parametrize(
    "layers, phrase",
    [
        ((nn.Conv1d(2, 4, 3, groups=2),), "front.0: nn.Conv1d with groups=2 is not read"),
        ((nn.Conv1d(2, 4, 3, padding=1, padding_mode="circular"),),
         "front.0: nn.Conv1d with padding_mode='circular' is not read"),
        ((nn.Conv1d(2, 4, 3), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True)),
         "front.2: nn.MaxPool1d with ceil_mode=True is not read"),
        ((nn.Conv1d(2, 4, 3), nn.AvgPool1d(2)), "front.1: nn.AvgPool1d is not read"),
        ((nn.Conv1d(2, 4, 4, padding="same"),), "front.0: nn.Conv1d with padding='same' pads its ends unequally"),
    ],
)
def test_an_unsupported_front_is_refused_naming_the_layer(layers, phrase):
    with pytest.raises(ValueError) as error:
        lrp_rnn.Model.from_torch(Front(*layers).double(), trust_forward=True)
    message = str(error.value)
    assert message.startswith(f"from_torch: {phrase}"), message
    assert "\n" not in message


def test_a_same_padded_front_with_a_pooling_loads_and_matches_its_forward():
    torch.manual_seed(3)
    net = Front(nn.Conv1d(2, 4, 3, padding="same"), nn.ReLU(), nn.MaxPool1d(3, stride=2, padding=1)).double().eval()
    model = lrp_rnn.Model.from_torch(net, trust_forward=True)
    assert model.config["front"][0]["padding"] == 1
    x = np.random.default_rng(5).standard_normal((9, 2))
    with torch.no_grad():
        logits = net(torch.tensor(x)[None])[0].numpy()
    assert_close("scores", model.explain(x).scores, logits, 1e-12)


def test_the_example_of_docs_python_md_runs(tmp_path):
    page = (REPO / "docs" / "python.md").read_text(encoding="utf8")
    section = page[page.index("### A convolutional front end"):]
    block = re.search(r"^```python\n(.*?)^```$", section, flags=re.S | re.M).group(1)
    block = block.replace('"my-cnn-lstm"', repr(str(tmp_path / "my-cnn-lstm")))
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 (48, 3)"
    assert (tmp_path / "my-cnn-lstm" / "model.safetensors").read_bytes() == (CNN / "model" / "model.safetensors").read_bytes()
