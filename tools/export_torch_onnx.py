"""Export a PyTorch text classifier as people write it to ONNX, with both of
torch's exporters and their default options: the fixtures of `lrp import`
for torch-made graphs (tests/fixtures/onnx/torch-*).

The module is the documented user model: attributes `emb`, `lstm` (or a
GRU) and `fc`, two layers, bidirectional, batch_first=True, and a head on
`torch.cat((h_n[-2], h_n[-1]), dim=1)` (the top layer's final state of
each direction); one variant reads `out[:, -1]` instead (the top layer's
output at the last position, which for the backward direction is not its
final state).

For each model the directory holds `model.onnx` (and `model.onnx.data`, the
weights, from the dynamo exporter), `vocab.txt` (line k = embedding row k),
`texts.txt` (one text a line, every one as long as the export's example:
the default options fix the input's shape) and `expected.jsonl`, the
scores onnxruntime computes from the .onnx file, one `{"scores": [...]}` a
line in text order (what `lrp check --expect` reads).

    pip install torch numpy onnx onnxscript onnxruntime
    python3 tools/export_torch_onnx.py            # writes tests/fixtures/onnx
    python3 tools/export_torch_onnx.py --out /tmp/onnx

Seeded: a rerun writes the same weights and texts.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_onnx import write_scores  # noqa: E402

V, E, H, C = 30, 8, 6, 3
# The export's example and every text have this many tokens.
T = 7


class TextClassifier(torch.nn.Module):
    """Embedding, a 2-layer bidirectional LSTM or GRU (batch_first), a linear
    head on the top layer's final states (`head="h_n"`) or on its output at
    the last position (`head="out"`)."""

    def __init__(self, cell="lstm", head="h_n"):
        super().__init__()
        self.emb = torch.nn.Embedding(V, E)
        rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.lstm = rnn(E, H, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(2 * H, C)
        self.head = head

    def forward(self, ids):
        out, state = self.lstm(self.emb(ids))
        if self.head == "out":
            return self.fc(out[:, -1])
        h_n = state[0] if isinstance(state, tuple) else state
        return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))


# name: (cell, head, exporter). torch's default exporter (dynamo) writes
# the weights to model.onnx.data beside the graph.
MODELS = {
    "torch-lstm-dynamo": ("lstm", "h_n", "dynamo"),
    "torch-lstm-legacy": ("lstm", "h_n", "legacy"),
    "torch-gru-dynamo": ("gru", "h_n", "dynamo"),
    "torch-gru-legacy": ("gru", "h_n", "legacy"),
    "torch-lstm-out-dynamo": ("lstm", "out", "dynamo"),
    "torch-lstm-out-legacy": ("lstm", "out", "legacy"),
}


def export_one(name, spec, out, seed):
    cell, head, exporter = spec
    torch.manual_seed(seed)
    model = TextClassifier(cell, head).eval()
    # Weights away from 0 so that a wrong gate order or a wrong head input
    # changes the scores by far more than rounding does.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.8, 0.8)
    directory = os.path.join(out, name)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    vocab = [f"w{k}" for k in range(V)]
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, V, size=T) for _ in range(4)]
    with open(os.path.join(directory, "texts.txt"), "w") as f:
        for row in ids:
            f.write(" ".join(vocab[k] for k in row) + "\n")
    example = torch.tensor(ids[0]).unsqueeze(0)
    path = os.path.join(directory, "model.onnx")
    # Default options, as a user writes the call.
    torch.onnx.export(model, (example,), path, dynamo=exporter == "dynamo")
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    scores = [session.run(None, {feed: np.array([row], dtype=np.int64)})[0][0].astype(np.float64).tolist()
              for row in ids]
    with torch.no_grad():
        torch_scores = [model(torch.tensor(row).unsqueeze(0))[0].tolist() for row in ids]
    write_scores(os.path.join(directory, "expected.jsonl"), scores)
    worst = max(abs(a - b) for s, t in zip(scores, torch_scores) for a, b in zip(s, t))
    files = sorted(os.listdir(directory))
    print(f"{name}: {files}; PyTorch and onnxruntime differ by up to {worst:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="the fixtures' directory (default tests/fixtures/onnx)",
                        default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx"))
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS), help="export these models alone")
    args = parser.parse_args()
    seeds = {name: 3000 + k for k, name in enumerate(MODELS)}
    for name in args.only or MODELS:
        export_one(name, MODELS[name], args.out, seed=seeds[name])


if __name__ == "__main__":
    main()
