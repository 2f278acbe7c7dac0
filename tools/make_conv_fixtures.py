"""Writes tests/fixtures/conv/cnn_lstm.json: a small PyTorch CNN + LSTM
classifier (Conv1d -> ReLU -> MaxPool1d -> LSTM(batch_first=True) -> Linear
on the last state), its weights and, for two inputs of different lengths,
what PyTorch computes after the convolution + ReLU, after the pooling, and
at the head. tests/tests/conv.rs reads it (cargo test needs no Python).

Run from the repository root: /work/venv/bin/python tools/make_conv_fixtures.py
"""

import json
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "conv" / "cnn_lstm.json"


class CnnLstm(nn.Module):
    """The documented shape: a convolution (strided and dilated here), ReLU,
    a max-pooling over time, an LSTM reading [B, T, C], a linear head on
    out[:, -1]. T = 11 becomes 5 after the convolution and 3 after the
    pooling; T = 8 becomes 3, then 2."""

    def __init__(self, channels=3, conv_channels=4, hidden=5, classes=2):
        super().__init__()
        self.conv = nn.Conv1d(channels, conv_channels, kernel_size=3, stride=2, dilation=2, padding=1)
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        self.lstm = nn.LSTM(conv_channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def front(self, x):
        """[B, T, C] -> (conv + ReLU, pooled), both [B, T, C_out]."""
        conv = torch.relu(self.conv(x.transpose(1, 2)))
        return conv.transpose(1, 2), self.pool(conv).transpose(1, 2)

    def forward(self, x):
        _, pooled = self.front(x)
        out, _ = self.lstm(pooled)
        return self.head(out[:, -1])


def rows(t):
    return t.detach().tolist()


def main():
    torch.manual_seed(28)
    model = CnnLstm().double().eval()
    inputs = [torch.randn(11, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)]
    cases = []
    with torch.no_grad():
        for x in inputs:
            conv, pooled = model.front(x[None])
            cases.append(
                {
                    "input": rows(x),
                    "conv_relu": rows(conv[0]),
                    "pooled": rows(pooled[0]),
                    "scores": rows(model(x[None])[0]),
                }
            )
    fixture = {
        "conv": {
            "weight": rows(model.conv.weight),
            "bias": rows(model.conv.bias),
            "kernel": 3,
            "stride": 2,
            "dilation": 2,
            "padding": 1,
        },
        "pool": {"kernel": 3, "stride": 2, "padding": 1},
        "lstm": {
            "weight_ih_l0": rows(model.lstm.weight_ih_l0),
            "weight_hh_l0": rows(model.lstm.weight_hh_l0),
            "bias": rows(model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0),
        },
        "head": {"weight": rows(model.head.weight), "bias": rows(model.head.bias)},
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
