"""Writes tests/fixtures/cnn-lstm/: a PyTorch CNN + LSTM saved as a model
directory by lrp_rnn.Model.from_torch(...).save, a CSV time series with a
header, and PyTorch's logits for it in float64.

The network is the shape docs/python.md documents for from_torch: an
nn.Sequential front end of nn.Conv1d / nn.ReLU / nn.MaxPool1d applied over
time to a [batch, time, channels] input (transposed to [batch, channels,
time] and back), an nn.LSTM with batch_first=True, an nn.Linear on the last
state. It is trained briefly (CPU, float64, a few seconds) to tell whether a
bump sits in the "pressure" channel, so its relevance has something to find.

Files written (cargo test reads them, and needs no Python):
  model/config.json, model/model.safetensors   the directory save() writes
  series.csv                                   one series, 48 steps x 3 channels
  expected.json                                PyTorch's logits for series.csv, {"scores": [...]}
  state_dict.pt                                the trained weights, for the README's example

Run from the repository root, with lrp_rnn importable:
  /work/venv/bin/python tools/cnn_lstm.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lrp_rnn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "cnn-lstm"
CHANNELS = ["pressure", "flow", "temperature"]
STEPS = 48


class CnnLstm(nn.Module):
    """Conv1d -> ReLU -> MaxPool1d -> Conv1d (dilated) -> ReLU, then an
    LSTM over the pooled positions and a linear head on its last state."""

    def __init__(self, channels=3, hidden=6, classes=2):
        super().__init__()
        self.front = nn.Sequential(
            nn.Conv1d(channels, 8, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(8, 6, kernel_size=3, dilation=2, padding=2),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(6, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        """x [B, T, C] -> logits [B, classes]."""
        features = self.front(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.lstm(features)
        return self.head(out[:, -1])


def series(rng, bump: bool) -> np.ndarray:
    """[STEPS, 3]: noise, a slow wave in flow, and a bump in pressure when `bump`."""
    t = np.arange(STEPS)
    x = rng.normal(0.0, 0.3, size=(STEPS, 3))
    x[:, 1] += np.sin(t / 5.0)
    x[:, 2] += 0.02 * t
    if bump:
        at = rng.integers(8, STEPS - 8)
        x[:, 0] += 2.0 * np.exp(-0.5 * ((t - at) / 2.0) ** 2)
    return x


def main():
    torch.manual_seed(28)
    rng = np.random.default_rng(28)
    net = CnnLstm().double()
    labels = rng.integers(0, 2, size=256)
    data = torch.tensor(np.stack([series(rng, bool(y)) for y in labels]))
    target = torch.tensor(labels)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(net(data), target)
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(data).argmax(1) == target).double().mean())

    x = series(np.random.default_rng(7), True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "series.csv", "w") as f:
        f.write(",".join(CHANNELS) + "\n")
        for row in x:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    # The logits of exactly what the CSV holds (repr round-trips a float64).
    read_back = np.loadtxt(OUT / "series.csv", delimiter=",", skiprows=1)
    assert np.array_equal(read_back, x)
    with torch.no_grad():
        logits = net(torch.tensor(x)[None])[0].tolist()

    model = lrp_rnn.Model.from_torch(net, trust_forward=True, labels=["flat", "bump"])
    model.save(OUT / "model")
    torch.save(net.state_dict(), OUT / "state_dict.pt")
    # What `lrp check --expect` reads.
    (OUT / "expected.json").write_text(json.dumps({"scores": logits}) + "\n")
    print(f"wrote {OUT} (torch {torch.__version__}, training accuracy {accuracy:.3f}, logits {logits})")


if __name__ == "__main__":
    main()
