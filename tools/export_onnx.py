"""Export `tools/pytorch_models.py` classifiers to ONNX with `torch.onnx.export`:
the fixtures of `lrp import` (tests/fixtures/onnx).

For each model: `model.onnx`, the inputs (`inputs.npz` of [T, E] arrays, or
`texts.txt` and `vocab.txt` for a model with an embedding), and the scores
the exported model should compute, one `{"scores": [...]}` a line in input
order: `expected.jsonl` by PyTorch, `expected-onnxruntime.jsonl` by
onnxruntime running the .onnx file (when onnxruntime is installed).

    pip install torch numpy onnx onnxscript onnxruntime
    python3 tools/export_onnx.py                 # writes tests/fixtures/onnx
    python3 tools/export_onnx.py --out /tmp/onnx

Seeded: a rerun writes the same weights and inputs.  The ONNX files come
from torch's default exporter (torch.export based, "dynamo") except the
`-legacy` model, written by the TorchScript exporter (dynamo=False), whose
graphs are laid out differently around the LSTM nodes.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import RecurrentClassifier  # noqa: E402

E, H, C, V = 5, 4, 3, 20

# name: (cell, bidirectional, layers, embedding, float64, legacy exporter)
MODELS = {
    "lstm-uni": ("lstm", False, 1, False, False, False),
    "gru-uni": ("gru", False, 1, False, False, False),
    "lstm-bi": ("lstm", True, 1, False, False, False),
    "gru-bi-2l": ("gru", True, 2, False, False, False),
    "lstm-bi-2l-f64": ("lstm", True, 2, False, True, False),
    "gru-bi-f64": ("gru", True, 1, False, True, False),
    "lstm-bi-legacy": ("lstm", True, 1, False, False, True),
    "emb-lstm-bi-2l": ("lstm", True, 2, True, False, False),
}

# Exported for the refusal test only: attention pooling is not imported.
REFUSED = {"refused-context-attention": {"kind": "context", "size": 3}}

LENGTHS = [1, 6, 11]
TEXTS = ["w3 w1 w4 w1 w5", "w9", "w2 w6 w5 w3 w5 w8 w9 w7"]


class Scores(torch.nn.Module):
    """The classifier's scores alone (the attention weights are None here)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)[0]


def export_one(name, spec, out, seed, attention=None):
    cell, bi, layers, embedding, double, legacy = spec
    torch.manual_seed(seed)
    config = {
        "encoder": {"cell": cell, "input_size": E, "hidden_size": H, "num_layers": layers, "bidirectional": bi},
        "attention": attention,
        "head": {"input": "last" if attention is None else "context", "num_classes": C},
    }
    if embedding:
        config.update({"embedding": True, "vocab_size": V})
    model = RecurrentClassifier(config).eval()
    # Weights away from 0 so that a wrong gate order changes the scores
    # by far more than rounding does.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.8, 0.8)
    dtype = torch.float64 if double else torch.float32
    model = model.to(dtype)
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    if embedding:
        vocab = [f"w{k}" for k in range(V)]
        with open(os.path.join(directory, "vocab.txt"), "w") as f:
            f.write("\n".join(vocab) + "\n")
        with open(os.path.join(directory, "texts.txt"), "w") as f:
            f.write("\n".join(TEXTS) + "\n")
        inputs = [torch.tensor([vocab.index(w) for w in text.split()]) for text in TEXTS]
        example = inputs[2]
    else:
        arrays = {f"seq{k}": rng.uniform(-1, 1, size=(t, E)).astype(np.float64 if double else np.float32)
                  for k, t in enumerate(LENGTHS)}
        np.savez(os.path.join(directory, "inputs.npz"), **arrays)
        inputs = [torch.from_numpy(a) for a in arrays.values()]
        example = inputs[2]
    path = os.path.join(directory, "model.onnx")
    wrapped = Scores(model).eval()
    if legacy:
        torch.onnx.export(wrapped, (example,), path, dynamo=False, input_names=["x"], output_names=["scores"],
                          dynamic_axes={"x": {0: "T"}})
    else:
        torch.onnx.export(wrapped, (example,), path, dynamo=True, input_names=["x"], output_names=["scores"],
                          dynamic_shapes=({0: torch.export.Dim("T", min=1, max=10000)},), external_data=False)
    with torch.no_grad():
        expected = [wrapped(x).tolist() for x in inputs]
    write_scores(os.path.join(directory, "expected.jsonl"), expected)
    try:
        import onnxruntime
    except ImportError:
        print(f"{name}: onnxruntime is not installed; no expected-onnxruntime.jsonl")
        return
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    try:
        ort = [session.run(None, {feed: x.numpy()})[0].astype(np.float64).tolist() for x in inputs]
    except Exception as e:  # onnxruntime's LSTM has no float64 kernel
        print(f"{name}: onnxruntime cannot run it ({str(e).splitlines()[0][-60:]}); no expected-onnxruntime.jsonl")
        return
    write_scores(os.path.join(directory, "expected-onnxruntime.jsonl"), ort)
    worst = max(abs(a - b) for e, o in zip(expected, ort) for a, b in zip(e, o))
    print(f"{name}: PyTorch and onnxruntime differ by up to {worst:.2e}")


def write_scores(path, all_scores):
    with open(path, "w") as f:
        for scores in all_scores:
            f.write(json.dumps({"scores": scores}) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx"))
    args = parser.parse_args()
    for k, (name, spec) in enumerate(MODELS.items()):
        export_one(name, spec, args.out, seed=1000 + k)
    for name, attention in REFUSED.items():
        export_one(name, ("lstm", False, 1, False, False, False), args.out, seed=2000, attention=attention)


if __name__ == "__main__":
    main()
