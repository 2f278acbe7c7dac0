"""Writes tests/fixtures/min-rnn/: minGRU and minLSTM text classifiers in
lrp's model format, and what PyTorch computes for them (cases.json):

- the scores of each text (the forward pass lrp must reproduce, f64);
- the relevance of each token, summed over its embedding dimensions, at
  eps 0 and bias factor 0, as input x modified gradient: the gates are
  detached (held constant), so the gradient of the score is the one
  signal-take-all LRP follows (tests/tests/oracle.rs says why).  This is
  an oracle that shares no code with lrp.

The modules are tools/pytorch_models.py's `MinGRU` and `MinLSTM` inside
`RecurrentClassifier`, written with seeded random weights (no training:
parity needs weights, not skill).  tests/tests/min_cells.rs reads the
fixtures, so `cargo test` needs no Python.

Run from the repository root: /work/venv/bin/python tools/make_min_fixtures.py
"""

import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_models import RecurrentClassifier, export  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "min-rnn"
VOCAB = ["<unk>", "the", "film", "is", "not", "good", "bad", "very", "a", "plot", "fine", "dull"]
TEXTS = ["the film is good", "the plot is not very good", "a dull film", "bad", "a very fine plot is not bad"]

# name -> (cell, bidirectional, layers, head input, attention)
MODELS = {
    "mingru": ("mingru", True, 2, "last", None),
    "minlstm": ("minlstm", True, 2, "last", None),
    "mingru-mean": ("mingru", False, 1, "mean", None),
    "minlstm-additive": ("minlstm", False, 1, "context", {"kind": "additive", "size": 3}),
}


def config(cell, bidirectional, layers, head_input, attention):
    return {
        "embedding": True,
        "vocab_size": len(VOCAB),
        "unk_token": "<unk>",
        "encoder": {"cell": cell, "input_size": 4, "hidden_size": 3, "num_layers": layers,
                    "bidirectional": bidirectional},
        "attention": attention,
        "head": {"input": head_input, "num_classes": 3},
        "labels": ["negative", "neutral", "positive"],
    }


def oracle(model, ids, target):
    """Per token: embedding . modified gradient of the target's score."""
    x = model.embedding(ids).detach().requires_grad_(True)
    model.encoder.detach_gates = True
    cfg = model.config
    model.config = dict(cfg, embedding=False)  # the module reads x as given
    try:
        scores, _ = model(x)
        scores[target].backward()
    finally:
        model.config = cfg
        model.encoder.detach_gates = False
    return (x * x.grad).sum(dim=1).tolist()


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    cases = []
    for k, (name, arch) in enumerate(MODELS.items()):
        torch.manual_seed(25 + k)
        model = RecurrentClassifier(config(*arch)).double().eval()
        export(model, str(OUT / name), vocab=VOCAB)
        for text in TEXTS:
            ids = torch.tensor([VOCAB.index(w) for w in text.split()])
            with torch.no_grad():
                scores, _ = model(ids)
            target = int(scores.argmax())
            case = {"model": name, "text": text, "scores": scores.tolist(), "target": target}
            # The attention weights are connection weights for LRP: the
            # oracle of a model with attention is tests/tests/oracle.rs's.
            if arch[4] is None:
                case["relevance"] = oracle(model, ids, target)
            cases.append(case)
    (OUT / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"wrote {len(cases)} cases for {len(MODELS)} models to {OUT}")


if __name__ == "__main__":
    main()
