"""White-box LSTMs for two formal languages, and their ground-truth data sets.

After the idea of Hao (2020, BlackboxNLP, "Evaluating attribution methods
using white-box LSTMs"): an LSTM whose weights are set by hand so that it
recognises a formal language exactly, which makes it known which input
symbol caused a rejection.  The construction here is our own; it is
described, weight by weight, in docs/whitebox.md.

Builds, in float64, two lrp model directories (tools/pytorch_models.py
`RecurrentClassifier` exported with `export`): an identity embedding over
the two symbols, one unidirectional LSTM layer, a linear head on the final
state, classes ["accept", "reject"]:

    anbn/model/   a^n b^n, n >= 1, vocabulary "a", "b"   (hidden size 4)
    dyck/model/   Dyck-1, vocabulary "(", ")"             (hidden size 2)

and, per language, rejected.json: rejected strings whose rejection has a
single offending symbol, in the format

    {"generated_by": "tools/whitebox_lstm.py",
     "sequences": [{"name": "s000", "text": "( ) ( ) )", "output": 1,
                    "point": 4, "neutral": [0, 4]}, ...]}

(`point`: 0-based position of the offender; `neutral`: [start, end), the
balanced prefix before it, present only when that prefix is balanced and
not empty).  Every Dyck string ends at its offender; an a^n b^n string with
an `a` after a `b` may go on with b's that neither reach depth 0 nor add a
violation (see docs/whitebox.md).

Before writing, the script checks with its own numpy forward pass that
both models decide their language for every string of length 1 to 14, and
after writing, that the exported files, read back into a fresh PyTorch
module, reject every data-set string.

Run from the repository root (seeded; the output is the same every run):
    python3 tools/whitebox_lstm.py              # writes tests/fixtures/whitebox/
    python3 tools/whitebox_lstm.py --out DIR    # writes DIR/anbn, DIR/dyck
Needs numpy, torch and safetensors.
"""

import argparse
import itertools
import json
import math
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import RecurrentClassifier, export  # noqa: E402

# --- The constants of the construction (docs/whitebox.md, "Weights") -------

# Saturation: a gate that should be open has pre-activation M, one that should
# be shut -M or less; a candidate that should be +-1 has pre-activation +-M.
# In float64 sigmoid(40) and tanh(40) round to exactly 1.0, so the counters
# count in exact integers; a shut gate lets through sigmoid(-40) = 4.2e-18.
M = 40.0
# tanh(1): the smallest nonzero value a counter's hidden state takes while
# the string is still acceptable (depth >= 0, #b >= 0).
T1 = math.tanh(1.0)
# Weight with which a latch's input gate reads a counter: large enough that
# a counter at 1 (h = tanh 1) moves the pre-activation by more than 2M.
Q = 110.0
assert Q * T1 > 2 * M
# Head: reject score = ALPHA (h_L1 + h_L2) + BETA h_C - GAMMA, accept = -reject.
ALPHA, BETA, GAMMA = 5.0, 2.0, 0.75


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Builder:
    """The LSTM's weights unit by unit, in PyTorch's layout: rows [i; f; g; o]
    blocks of H, columns of W_ih the one-hot symbols (0 = opening, 1 =
    closing), columns of W_hh the units.  All biases go into bias_ih."""

    def __init__(self, units):
        self.units = {name: k for k, name in enumerate(units)}
        h = len(units)
        self.h = h
        self.w_ih = np.zeros((4 * h, 2))
        self.w_hh = np.zeros((4 * h, h))
        self.b = np.zeros(4 * h)

    def row(self, gate, unit):
        return "ifgo".index(gate) * self.h + self.units[unit]

    def set(self, gate, unit, bias=0.0, opening=0.0, closing=0.0, **recurrent):
        r = self.row(gate, unit)
        self.b[r] = bias
        self.w_ih[r] = [opening, closing]
        for other, w in recurrent.items():
            self.w_hh[r, self.units[other]] = w

    def always_open(self, unit, gates="ifo"):
        for gate in gates:
            self.set(gate, unit, bias=M)


def counter(b, unit, opening, closing):
    """A unit whose cell adds `opening` or `closing` (each +1, -1 or 0)
    every step: input and forget gate open, candidate tanh(M x) = exactly
    +-1 or 0, output gate open, so c_t is the running sum and h_t = tanh(c_t)."""
    b.always_open(unit)
    b.set("g", unit, opening=M * opening, closing=M * closing)


def latch(b, unit, symbol, **trigger):
    """A unit whose cell is 0 until its input gate opens and then stays >= 1:
    forget and output gate open, candidate tanh(M x_symbol) (1 for the
    symbol that can offend, exactly 0 for the other), input gate as
    `trigger` says (bias and weights)."""
    b.always_open(unit, "fo")
    b.set("g", unit, **{symbol: M})
    b.set("i", unit, **trigger)


def head(units):
    """Head weights [2, H] and bias [2]: reject = ALPHA * latches + BETA * C - GAMMA."""
    w = np.array([{"C": BETA, "L1": ALPHA, "L2": ALPHA}.get(u, 0.0) for u in units])
    return np.stack([-w, w]), np.array([GAMMA, -GAMMA])


def build_anbn():
    units = ["C", "S", "L1", "L2"]
    b = Builder(units)
    counter(b, "C", +1, -1)  # depth: #a - #b
    counter(b, "S", 0, +1)  # #b so far; h_S > 0 once a b has been read
    # L1, a b read at depth 0: open (2M - M = M) only when h_C = 0;
    # at depth >= 1 the pre-activation is at most 2M - Q tanh(1) - M < -M.
    latch(b, "L1", "closing", bias=-M, closing=2 * M, C=-Q)
    # L2, an a read after some b: Q x_a + Q h_S - (Q + M):
    # a before any b: -M; a after a b: Q tanh(1) - M > M; a b: at most -M.
    latch(b, "L2", "opening", bias=-(Q + M), opening=Q, S=Q)
    return units, b, ["a", "b"]


def build_dyck():
    units = ["C", "L1"]
    b = Builder(units)
    counter(b, "C", +1, -1)  # depth: #( - #)
    latch(b, "L1", "closing", bias=-M, closing=2 * M, C=-Q)  # a ) read at depth 0
    return units, b, ["(", ")"]


def forward(units, b, ids):
    """Numpy forward of a batch of equal-length id sequences [N, T]:
    the class scores [N, 2], exactly as PyTorch's LSTM computes them."""
    n, t_len = ids.shape
    h = np.zeros((n, b.h))
    c = np.zeros((n, b.h))
    eye = np.eye(2)
    for t in range(t_len):
        z = eye[ids[:, t]] @ b.w_ih.T + h @ b.w_hh.T + b.b
        i, f, g, o = (z[:, k * b.h:(k + 1) * b.h] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    w, bias = head(units)
    return h @ w.T + bias


def in_anbn(s):
    n = len(s) // 2
    return n >= 1 and s == [0] * n + [1] * n


def in_dyck(s):
    depth = 0
    for x in s:
        depth += 1 if x == 0 else -1
        if depth < 0:
            return False
    return depth == 0 and len(s) > 0


def check_exact(name, units, b, member, max_len=14):
    """Every string of length 1..max_len: reject (class 1) iff not a member.
    Returns the smallest gap between the winning and the losing score."""
    worst = math.inf
    for t_len in range(1, max_len + 1):
        ids = np.array(list(itertools.product([0, 1], repeat=t_len)))
        scores = forward(units, b, ids)
        want = np.array([0 if member(list(s)) else 1 for s in ids])
        got = scores.argmax(axis=1)
        bad = np.nonzero(got != want)[0]
        if len(bad):
            raise SystemExit(f"{name}: wrong on {ids[bad[0]].tolist()} (scores {scores[bad[0]]})")
        worst = min(worst, np.abs(scores[:, 1] - scores[:, 0]).min())
    print(f"{name}: exact on all strings of length 1..{max_len}, smallest score gap {worst:.4f}")
    return worst


def dyck_rejected(rng, count):
    """Balanced prefixes of varied length (0..18, even), each followed by the
    offending ")"; distinct strings, prefix lengths spread evenly."""
    def balanced(n_pairs):
        # a uniform-ish random Dyck word: random walk conditioned by rejection
        while True:
            s = [0] * n_pairs + [1] * n_pairs
            rng.shuffle(s)
            if in_dyck(s) or n_pairs == 0:
                return s
    seen, out = set(), []
    attempts = 0
    while len(out) < count and attempts < 100 * count:
        attempts += 1
        n_pairs = attempts % 10  # 0..9 pairs in turn (the short ones run out)
        s = balanced(n_pairs) + [1]
        if tuple(s) in seen:
            continue
        seen.add(tuple(s))
        p = len(s) - 1
        out.append((s, p, [0, p] if p > 0 else None))
    return out


def anbn_rejected(rng, count, max_len=20):
    """Every a^n b^n b (the extra b; n = 0..9 for max_len 20), every
    a^n b^k a b^j with k = n (the a after a b, balanced prefix), and a seeded
    draw of the other a^n b^k a b^j (k < n) up to `count` strings in all.
    The j b's after the offending a are read at depths n - k + 1 down to
    n - k + 2 - j >= 1, so none of them is read at depth 0: j <= n - k + 1."""
    out = []
    for n in range(0, (max_len - 1) // 2 + 1):
        s = [0] * n + [1] * n + [1]
        out.append((s, 2 * n, [0, 2 * n] if n > 0 else None))
    others = []
    for n in range(1, max_len):
        for k in range(1, n + 1):
            depth_after = n - k + 1  # depth once the offending a is read
            for j in range(0, depth_after + 1):
                s = [0] * n + [1] * k + [0] + [1] * j
                if len(s) <= max_len:
                    p = n + k
                    others.append((s, p, [0, p] if k == n else None))
    rng.shuffle(others)
    # keep every case with a balanced prefix (k = n), fill up with the rest
    with_neutral = [o for o in others if o[2] is not None]
    rest = [o for o in others if o[2] is None]
    out += with_neutral + rest[: max(0, count - len(out) - len(with_neutral))]
    out.sort(key=lambda o: (len(o[0]), o[1], o[0]))
    return out


def write_dataset(path, vocab, cases):
    seqs = []
    for k, (s, p, neutral) in enumerate(cases):
        entry = {"name": f"s{k:03d}", "text": " ".join(vocab[x] for x in s), "output": 1, "point": p}
        if neutral is not None:
            entry["neutral"] = neutral
        seqs.append(entry)
    with open(path, "w") as f:
        f.write('{"generated_by": "tools/whitebox_lstm.py",\n "sequences": [\n')
        f.write(",\n".join("  " + json.dumps(e) for e in seqs))
        f.write("]}\n")


def to_module(units, b, vocab):
    config = {
        "embedding": True, "vocab_size": 2, "lowercase": False,
        "encoder": {"cell": "lstm", "input_size": 2, "hidden_size": len(units),
                    "num_layers": 1, "bidirectional": False},
        "attention": None,
        "head": {"input": "last", "num_classes": 2, "bias": True},
    }
    model = RecurrentClassifier(config).double()
    w, bias = head(units)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(2, dtype=torch.float64))
        model.encoder.weight_ih_l0.copy_(torch.from_numpy(b.w_ih))
        model.encoder.weight_hh_l0.copy_(torch.from_numpy(b.w_hh))
        model.encoder.bias_ih_l0.copy_(torch.from_numpy(b.b))
        model.encoder.bias_hh_l0.zero_()
        model.head.weight.copy_(torch.from_numpy(w))
        model.head.bias.copy_(torch.from_numpy(bias))
    return model, config


def check_exported(directory, config, cases):
    """Reload the written weights into a fresh module; every case must be rejected."""
    from safetensors.torch import load_file
    fresh = RecurrentClassifier(config).double()
    fresh.load_state_dict(load_file(os.path.join(directory, "model.safetensors")))
    with torch.no_grad():
        for s, _, _ in cases:
            scores, _ = fresh(torch.tensor(s))
            if scores.argmax().item() != 1:
                raise SystemExit(f"{directory}: {s} is not rejected (scores {scores.tolist()})")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "whitebox"))
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--count", type=int, default=200, help="rejected strings per language (about)")
    args = ap.parse_args()
    # The weights are all set by hand (every tensor of the module is
    # overwritten); only the choice of rejected strings draws from the seed.

    languages = [
        ("anbn", build_anbn, in_anbn, anbn_rejected),
        ("dyck", build_dyck, in_dyck, dyck_rejected),
    ]
    for name, build, member, rejected in languages:
        units, b, vocab = build()
        check_exact(name, units, b, member)
        cases = rejected(random.Random(args.seed), args.count)
        for s, p, _ in cases:
            assert not member(s) and forward(units, b, np.array([s]))[0].argmax() == 1, s
        model, config = to_module(units, b, vocab)
        directory = os.path.join(args.out, name, "model")
        export(model, directory, vocab=vocab, labels=["accept", "reject"])
        check_exported(directory, model.config, cases)
        write_dataset(os.path.join(args.out, name, "rejected.json"), vocab, cases)
        print(f"{name}: wrote {directory} and {len(cases)} rejected strings")


if __name__ == "__main__":
    main()
