#!/usr/bin/env python3
"""Generate the PyTorch-parity fixtures in tests/fixtures/parity/.

What it writes (all under tests/fixtures/parity/, relative to the repo root):

  <name>/             a model directory (config.json + model.safetensors
                      [+ vocab.txt]) written by `pytorch_models.export`, with
                      float64 weights
  <name>-f32/         the same model, its float64 parameters cast to float32
  inputs/<name>-T<n>.npy
                      float64 input vectors [T, E] for the vector-input models
                      (shared by <name> and <name>-f32; the f32 model is fed
                      the float32 cast of the same values)
  cases.json          for every (model, input): the scores [C] and attention
                      weights [T] (or null) computed by torch, and for the
                      argmax target and one other target the gradient
                      d scores[target] / d x, shaped [T][E]. For embedding
                      models the gradient is taken with respect to the embedded
                      vectors (the looked-up rows of embedding.weight).
                      Per-step models (head input `each`) also carry
                      `outputs` [T][C], every position's outputs; their
                      `scores` are the last position's (lrp's default), and
                      each gradient names its `position`: the last, and the
                      first when T > 1.

Models are `RecurrentClassifier`s from tools/pytorch_models.py (the forward
pass lrp must reproduce). Every parameter, biases included, is
re-initialised uniform(-0.5, 0.5) from a per-model torch.manual_seed, so
nothing is trivially zero.

Run from the repo root:

    python3 tools/make_parity_fixtures.py

Needs torch, safetensors and numpy. Never needed by `cargo test`: the
generated files are committed. After writing, the script reloads every
model.safetensors with safetensors.torch.load_file into a fresh
RecurrentClassifier and checks that it reproduces the written scores.
"""

import copy
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import RecurrentClassifier, export  # noqa: E402

BASE_SEED = 20240601
OUT = os.path.join("tests", "fixtures", "parity")
VOCAB = [f"w{i}" for i in range(20)]
LENGTHS = [1, 7, 23]


def enc(cell, e, h, layers=None, bi=None):
    d = {"cell": cell, "input_size": e, "hidden_size": h}
    # leave some optional keys out on purpose: loaders must apply defaults
    if layers is not None:
        d["num_layers"] = layers
    if bi is not None:
        d["bidirectional"] = bi
    return d


def head(inp, c, bias=None):
    d = {"input": inp, "num_classes": c}
    if bias is not None:
        d["bias"] = bias
    return d


# (name, config, extra input lengths, labels)
MODELS = [
    ("lstm-last-uni",
     {"encoder": enc("lstm", 4, 3), "head": head("last", 3)}, [],
     ["neg", "neu", "pos"]),
    ("lstm-last-bi-2l",
     {"embedding": False, "encoder": enc("lstm", 5, 4, 2, True),
      "attention": None, "head": head("last", 2, bias=False)}, [], None),
    ("gru-last-bi",
     {"encoder": enc("gru", 3, 5, 1, True), "attention": None,
      "head": head("last", 4, bias=True)}, [], None),
    ("gru-3l-uni-additive-context",
     {"encoder": enc("gru", 6, 3, 3, False),
      "attention": {"kind": "additive", "size": 3},
      "head": head("context", 3)}, [], None),
    ("lstm-bi-context-context",
     {"encoder": enc("lstm", 7, 2, 1, True),
      "attention": {"kind": "context", "size": 4},
      "head": head("context", 2)}, [], ["a", "b"]),
    ("lstm-bi-additive-contextlast",
     {"encoder": enc("lstm", 4, 3, 1, True),
      "attention": {"kind": "additive", "size": 2},
      "head": head("context+last", 3)}, [60], None),
    ("lstm-uni-dot-context",
     {"encoder": enc("lstm", 5, 6, 1, False), "attention": {"kind": "dot"},
      "head": head("context", 4, bias=False)}, [], None),
    ("lstm-bi-3l-general-contextlast",
     {"encoder": enc("lstm", 3, 2, 3, True), "attention": {"kind": "general"},
      "head": head("context+last", 2)}, [], None),
    ("gru-bi-2l-dot-contextlast",
     {"encoder": enc("gru", 6, 4, 2, True), "attention": {"kind": "dot"},
      "head": head("context+last", 3, bias=False)}, [], None),
    ("gru-uni-general-context",
     {"encoder": enc("gru", 4, 5), "attention": {"kind": "general"},
      "head": head("context", 4)}, [], None),
    ("emb-lstm-bi-additive-context",
     {"embedding": True, "vocab_size": len(VOCAB),
      "encoder": enc("lstm", 5, 3, 1, True),
      "attention": {"kind": "additive", "size": 4},
      "head": head("context", 3)}, [], ["x", "y", "z"]),
    # attention configured but the head reads `last`: attention parameters are
    # in the weights but unused, and the attention output is null.
    ("emb-gru-uni-context-last",
     {"embedding": True, "vocab_size": len(VOCAB),
      "encoder": enc("gru", 4, 3, 2, False),
      "attention": {"kind": "context", "size": 3},
      "head": head("last", 2)}, [], None),
    # issue 15: mean, max and per-step heads, and regression outputs.
    # Appended, so the models above keep their seeds.
    ("lstm-bi-2l-mean",
     {"encoder": enc("lstm", 4, 3, 2, True), "head": head("mean", 3)}, [], None),
    ("gru-uni-max",
     {"encoder": enc("gru", 5, 4), "head": head("max", 2, bias=False)}, [], None),
    ("lstm-uni-each",
     {"encoder": enc("lstm", 3, 4), "head": head("each", 3)}, [], ["B", "I", "O"]),
    ("gru-bi-each-regression",
     {"encoder": enc("gru", 4, 3, 1, True),
      "head": dict(head("each", 2), task="regression")}, [], None),
    ("lstm-bi-max-regression",
     {"encoder": enc("lstm", 3, 3, 1, True),
      "head": dict(head("max", 1), task="regression")}, [], None),
    ("emb-gru-bi-mean",
     {"embedding": True, "vocab_size": len(VOCAB),
      "encoder": enc("gru", 4, 3, 1, True), "head": head("mean", 2)}, [], None),
]


def forward_vectors(model, x):
    """model.forward on already-embedded vectors x [T, E] (embedding skipped)."""
    saved = model.config
    model.config = dict(saved, embedding=False)
    try:
        return model(x)
    finally:
        model.config = saved


def evaluate(model, x_vec):
    """scores, attention, gradients (and every position's outputs, for a
    per-step head, else None) for one input (x_vec: [T, E] vectors)."""
    out, weights = forward_vectors(model, x_vec.detach())
    out = out.detach()
    each = model.config["head"]["input"] == "each"
    # a per-step head is explained at its last position by default, and
    # here also at its first
    positions = sorted({out.shape[0] - 1, 0}, reverse=True) if each else [None]
    scores = out[-1] if each else out
    c = scores.shape[0]
    pred = int(torch.argmax(scores))
    grads = []
    for position in positions:
        at = out[position] if each else out
        p = int(torch.argmax(at))
        for target in [p, (p + 1) % c] if c > 1 else [p]:
            x = x_vec.detach().clone().requires_grad_(True)
            s, _ = forward_vectors(model, x)
            if each:
                s = s[position]
            (g,) = torch.autograd.grad(s[target], x)
            grad = {"target": target, "gradient": g.tolist()}
            if each:
                grad["position"] = position
            grads.append(grad)
    return scores, weights, pred, grads, (out.tolist() if each else None)


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "inputs"))

    cases = []
    for index, (name, config, extra, labels) in enumerate(MODELS):
        torch.manual_seed(BASE_SEED + index)
        model64 = RecurrentClassifier(copy.deepcopy(config)).double()
        with torch.no_grad():
            for p in model64.parameters():
                p.uniform_(-0.5, 0.5)
        model64.eval()
        model32 = copy.deepcopy(model64).float().eval()
        is_emb = bool(config.get("embedding"))
        vocab = VOCAB if is_emb else None
        export(model64, os.path.join(OUT, name), vocab=vocab, labels=labels)
        export(model32, os.path.join(OUT, name + "-f32"), vocab=vocab, labels=labels)

        e = config["encoder"]["input_size"]
        for t in LENGTHS + extra:
            if is_emb:
                ids = torch.randint(0, len(VOCAB), (t,))
                tokens = [VOCAB[i] for i in ids.tolist()]
                src = {"tokens": tokens}
            else:
                xs = torch.randn(t, e, dtype=torch.float64)
                rel = f"inputs/{name}-T{t}.npy"
                np.save(os.path.join(OUT, rel), xs.numpy())
                src = {"input": rel}
            for suffix, model, dtype in [("", model64, "f64"), ("-f32", model32, "f32")]:
                if is_emb:
                    x_vec = model.embedding.weight[ids]
                    # the token path must agree with the embedded-vector path
                    s_tok, _ = model(ids)
                else:
                    x_vec = xs.to(model.head.weight.dtype)
                scores, weights, pred, grads, outputs = evaluate(model, x_vec)
                if is_emb:
                    s_tok = s_tok.detach()
                    assert torch.equal(s_tok[-1] if outputs else s_tok, scores), name
                case = {"name": f"{name}{suffix}-T{t}", "model": name + suffix,
                        "dtype": dtype}
                case.update(src)
                case.update({
                    "scores": scores.tolist(),
                    "attention": None if weights is None else weights.detach().tolist(),
                    "predicted": pred,
                    "gradients": grads,
                })
                if outputs is not None:
                    case["outputs"] = outputs
                cases.append(case)

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        f.write('{"generated_by": "tools/make_parity_fixtures.py",\n')
        f.write(f' "torch_version": {json.dumps(torch.__version__)},\n')
        f.write(' "cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")

    verify()


def verify():
    """Reload every exported model from disk and recompute the written scores."""
    with open(os.path.join(OUT, "cases.json")) as f:
        data = json.load(f)
    worst = {"f64": 0.0, "f32": 0.0}
    for case in data["cases"]:
        d = os.path.join(OUT, case["model"])
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        state = load_file(os.path.join(d, "model.safetensors"))
        dtype = torch.float64 if case["dtype"] == "f64" else torch.float32
        assert all(v.dtype == dtype for v in state.values()), case["model"]
        # load_state_dict copies into the existing (f32) parameters, so the
        # fresh model must be cast to the file's dtype first
        model = RecurrentClassifier(config).to(dtype).eval()
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            if "tokens" in case:
                with open(os.path.join(d, config["vocab"])) as f:
                    vocab = f.read().split("\n")[:-1]
                x = torch.tensor([vocab.index(w) for w in case["tokens"]])
            else:
                x = torch.from_numpy(np.load(os.path.join(OUT, case["input"]))).to(dtype)
            scores, weights = model(x)
        if "outputs" in case:
            oerr = (scores.double() - torch.tensor(case["outputs"], dtype=torch.float64)).abs().max().item()
            assert oerr <= (1e-12 if case["dtype"] == "f64" else 1e-6), (case["name"], oerr)
            scores = scores[-1]
        expected = torch.tensor(case["scores"], dtype=torch.float64)
        err = (scores.double() - expected).abs().max().item()
        worst[case["dtype"]] = max(worst[case["dtype"]], err)
        tol = 1e-12 if case["dtype"] == "f64" else 1e-6
        assert err <= tol, (case["name"], err)
        assert (weights is None) == (case["attention"] is None), case["name"]
        if weights is not None:
            werr = (weights.double() - torch.tensor(case["attention"], dtype=torch.float64)).abs().max().item()
            assert werr <= tol, (case["name"], werr)
    print(f"verified {len(data['cases'])} cases; max |score diff| "
          f"f64 {worst['f64']:.3g}, f32 {worst['f32']:.3g}")


if __name__ == "__main__":
    main()
