"""Export a PyTorch text classifier as people write it to ONNX, with both of
torch's exporters and their default options: the fixtures of `lrp import`
for torch-made graphs (tests/fixtures/onnx/torch-*).

The module is tools/own_model.py's `OwnClassifier` with the weights it
trained (tests/fixtures/own-model/{lstm,gru}): attributes `emb`, `lstm` (or
`gru`) and `fc`, two layers, bidirectional, batch_first=True, and a head on
`torch.cat((h_n[-2], h_n[-1]), dim=1)` (the top layer's final state of
each direction); one variant reads `out[:, -1]` instead (the top layer's
output at the last position, which for the backward direction is not its
final state), with the LSTM's weights.

For each model the directory holds `model.onnx` (and `model.onnx.data`, the
weights, from the dynamo exporter), `vocab.txt` (line k = embedding row k),
`texts.txt` (one text a line, every one as long as the export's example:
the default options fix the input's shape) and `expected.jsonl`, the
scores onnxruntime computes from the .onnx file, one `{"scores": [...]}` a
line in text order (what `lrp check --expect` reads).

    pip install torch numpy onnx onnxscript onnxruntime
    python3 tools/export_torch_onnx.py            # writes tests/fixtures/onnx
    python3 tools/export_torch_onnx.py --out /tmp/onnx

No randomness: a rerun writes the same weights, texts and scores.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_onnx import write_scores  # noqa: E402

from own_model import TEXTS, OwnClassifier  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# The weights and vocabularies of tools/own_model.py's trained models: the
# model explained from Python and from the CLI is the one exported here.
OWN_MODELS = os.path.join(HERE, "..", "tests", "fixtures", "own-model")
# The export's example and every text have this many words (the default
# options fix the input's shape): the five-word texts of own_model.TEXTS,
# and one of its training texts.
EXPORTED_TEXTS = [text for text in TEXTS if len(text.split()) == 5] + ["a moving and funny story"]


class OwnClassifierOnLastOutput(OwnClassifier):
    """The same module with its head on `out[:, -1]`, the top layer's output
    at the last position, instead of the final states `h_n`."""

    def forward(self, ids):
        out, _ = getattr(self, self.cell)(self.emb(ids))
        return self.fc(out[:, -1])


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


def export_one(name, spec, out):
    cell, head, exporter = spec
    own = os.path.join(OWN_MODELS, cell)
    with open(os.path.join(own, "vocab.txt")) as f:
        vocab = f.read().splitlines()
    model = (OwnClassifierOnLastOutput if head == "out" else OwnClassifier)(len(vocab), cell=cell)
    model.load_state_dict(torch.load(os.path.join(own, "state_dict.pt")))
    model.eval()
    directory = os.path.join(out, name)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    shutil.copy(os.path.join(own, "vocab.txt"), os.path.join(directory, "vocab.txt"))
    index = {word: k for k, word in enumerate(vocab)}
    ids = [[index[word] for word in text.split()] for text in EXPORTED_TEXTS]
    with open(os.path.join(directory, "texts.txt"), "w") as f:
        f.write("\n".join(EXPORTED_TEXTS) + "\n")
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
    torch.set_num_threads(1)
    for name in args.only or MODELS:
        export_one(name, MODELS[name], args.out)


if __name__ == "__main__":
    main()
