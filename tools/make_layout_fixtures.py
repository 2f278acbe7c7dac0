#!/usr/bin/env python3
"""Fixtures of the `onnx` and `tf1` layouts, made from PyTorch models.

Without ONNX Runtime or TensorFlow at hand, the readers of these layouts are
tested the other way round: a PyTorch `RecurrentClassifier`
(tools/pytorch_models.py) is written in the layout by the permutation
docs/model-format.md documents, and lrp must give the scores torch computes
for the PyTorch model. A reader that ordered a gate block or a bias wrongly
would not.

What it writes (under tests/fixtures/frameworks/, from the repo root):

  onnx/<name>/   config.json (layout "onnx"), model.safetensors, float64
  tf1/<name>/    config.json (layout "tf1", "forget_bias": 1.0), weights.npz,
                 float64
  <layout>/cases.json
                 per (model, input): the input, torch's scores [C] and the
                 gradient of the predicted class [T][E]

The permutations (the file's gate block for each of PyTorch's blocks):
  onnx LSTM  i, o, f, c      W [dirs, 4H, in], R [dirs, 4H, H], B [dirs, 8H] = [Wb; Rb]
  onnx GRU   z, r, h         W [dirs, 3H, in], R [dirs, 3H, H], B [dirs, 6H] = [Wb; Rb]
                             (linear_before_reset = 1: PyTorch's GRU)
  tf1 LSTM   i, j, f, o      kernel [in + H, 4H] over [x; h], bias [4H], and
                             TF's forget_bias 1.0 taken out of the f rows

Run from the repo root:

    python3 tools/make_layout_fixtures.py

Needs torch, numpy and safetensors; never needed by `cargo test`.
"""

import copy
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import RecurrentClassifier  # noqa: E402

OUT = os.path.join("tests", "fixtures", "frameworks")
SEED = 20260502
LENGTHS = [1, 5, 11]

# For each of PyTorch's gate blocks (LSTM i, f, g, o; GRU r, z, n), the
# block of the layout's file it goes to.
ONNX_LSTM = [0, 2, 3, 1]
ONNX_GRU = [1, 0, 2]
TF1_LSTM = [0, 2, 1, 3]


def enc(cell, e, h, layers, bi):
    return {"cell": cell, "input_size": e, "hidden_size": h, "num_layers": layers, "bidirectional": bi}


MODELS = {
    "onnx": {
        "lstm-bi-2l": {"encoder": enc("lstm", 4, 3, 2, True), "head": {"input": "last", "num_classes": 3}},
        "gru-bi": {"encoder": enc("gru", 3, 4, 1, True), "head": {"input": "last", "num_classes": 2, "bias": False}},
        "gru-2l-context-attention": {
            "encoder": enc("gru", 4, 3, 2, False), "attention": {"kind": "context", "size": 3},
            "head": {"input": "context+last", "num_classes": 3}},
    },
    "tf1": {
        "lstm-uni": {"encoder": enc("lstm", 4, 5, 1, False), "head": {"input": "last", "num_classes": 3}},
        "lstm-bi-2l": {"encoder": enc("lstm", 3, 3, 2, True), "head": {"input": "last", "num_classes": 2, "bias": False}},
    },
}


def to_file_order(m, h, blocks):
    """Rows of PyTorch's gate block k go to the file's block blocks[k]."""
    out = np.zeros_like(m)
    for k, to in enumerate(blocks):
        out[to * h:(to + 1) * h] = m[k * h:(k + 1) * h]
    return out


def onnx_tensors(model, config):
    e = config["encoder"]
    h, layers, bi = e["hidden_size"], e["num_layers"], e["bidirectional"]
    blocks = ONNX_LSTM if e["cell"] == "lstm" else ONNX_GRU
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {}
    for k in range(layers):
        W, R, B = [], [], []
        for suffix in ["", "_reverse"] if bi else [""]:
            W.append(to_file_order(sd[f"encoder.weight_ih_l{k}{suffix}"], h, blocks))
            R.append(to_file_order(sd[f"encoder.weight_hh_l{k}{suffix}"], h, blocks))
            B.append(np.concatenate([to_file_order(sd[f"encoder.bias_ih_l{k}{suffix}"], h, blocks),
                                     to_file_order(sd[f"encoder.bias_hh_l{k}{suffix}"], h, blocks)]))
        out[f"encoder.l{k}.W"] = np.stack(W)
        out[f"encoder.l{k}.R"] = np.stack(R)
        out[f"encoder.l{k}.B"] = np.stack(B)
    for name, value in sd.items():
        if not name.startswith("encoder."):
            out[name] = value  # embedding, attention and head keep PyTorch's names
    return out


def tf1_tensors(model, config):
    e = config["encoder"]
    h, layers, bi = e["hidden_size"], e["num_layers"], e["bidirectional"]
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {}
    for k in range(layers):
        for side, suffix in [("forward", ""), ("backward", "_reverse")][:2 if bi else 1]:
            w_ih = to_file_order(sd[f"encoder.weight_ih_l{k}{suffix}"], h, TF1_LSTM)
            w_hh = to_file_order(sd[f"encoder.weight_hh_l{k}{suffix}"], h, TF1_LSTM)
            bias = to_file_order(sd[f"encoder.bias_ih_l{k}{suffix}"] + sd[f"encoder.bias_hh_l{k}{suffix}"],
                                 h, TF1_LSTM)
            # TF adds forget_bias (1.0) to the f rows (block 2 of i, j, f, o).
            bias[2 * h:3 * h] -= 1.0
            out[f"encoder.l{k}.{side}.kernel"] = np.concatenate([w_ih.T, w_hh.T])
            out[f"encoder.l{k}.{side}.bias"] = bias
    for name, value in sd.items():
        if name == "head.weight":
            out["head.kernel"] = value.T.copy()
        elif not name.startswith("encoder."):
            out[name] = value
    return out


def main():
    torch.set_num_threads(1)
    for layout, models in MODELS.items():
        root = os.path.join(OUT, layout)
        if os.path.isdir(root):
            shutil.rmtree(root)
        os.makedirs(root)
        cases = []
        for index, (name, config) in enumerate(models.items()):
            torch.manual_seed(SEED + index + (100 if layout == "tf1" else 0))
            model = RecurrentClassifier(copy.deepcopy(config)).double()
            with torch.no_grad():
                for p in model.parameters():
                    p.uniform_(-0.5, 0.5)
            model.eval()
            directory = os.path.join(root, name)
            os.makedirs(directory)
            c = {"format": "lrp-model", "version": 1, "layout": layout}
            c.update(copy.deepcopy(config))
            if layout == "onnx":
                c["weights"] = "model.safetensors"
                if c["encoder"]["cell"] == "gru":
                    c["encoder"]["gru_reset"] = "after"  # linear_before_reset = 1
                save_file({k: np.ascontiguousarray(v) for k, v in onnx_tensors(model, config).items()},
                          os.path.join(directory, "model.safetensors"))
            else:
                c["weights"] = "weights.npz"
                c["encoder"]["forget_bias"] = 1.0
                np.savez(os.path.join(directory, "weights.npz"), **tf1_tensors(model, config))
            with open(os.path.join(directory, "config.json"), "w") as f:
                json.dump(c, f, indent=2)
                f.write("\n")
            e = config["encoder"]["input_size"]
            for t in LENGTHS:
                x = torch.randn(t, e, dtype=torch.float64, requires_grad=True)
                scores, _ = model(x)
                target = int(torch.argmax(scores))
                (g,) = torch.autograd.grad(scores[target], x)
                cases.append({"name": f"{name}-T{t}", "model": name, "dtype": "f64",
                              "input": x.detach().tolist(), "scores": scores.detach().tolist(),
                              "gradient": {"target": target, "gradient": g.tolist()}})
        with open(os.path.join(root, "cases.json"), "w") as f:
            json.dump({"generated_by": "tools/make_layout_fixtures.py", "cases": cases}, f, indent=1)
            f.write("\n")
        print(f"{layout}: {len(cases)} cases")


if __name__ == "__main__":
    main()
