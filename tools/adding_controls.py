"""Write the two hand-set control models of the adding task.

Both are one-unit LSTMs (H = 1) that read steps [value, marker] and compute
the sum of the two marked values -- the task of the trained model in
tests/fixtures/adding/model, and closer to it (held-out MAE 0.0063 against
the trained model's 0.0116) -- and agree with each other to 6e-8.  They differ only in
how the marker reaches the cell, and that is what LRP sees:

    gates (both models), with K = 40:
        i_t = sigmoid(K m_t - K/2)      ~ 1 at a marked step, ~2e-9 elsewhere
        f_t = sigmoid(K/2)              ~ 1: the cell keeps its sum
        o_t = sigmoid(K/2)              ~ 1
    candidate:
        value control:  g_t = tanh(a v_t)                 the value alone
        marker control: g_t = tanh(a v_t - a m_t + a)     the marker too
    cell and output:
        c_t = f_t c_{t-1} + i_t g_t,    h_t = o_t tanh(c_t),    y = h_T / a

At a marked step (m = 1) both candidates are tanh(a v), so the models agree
there; at an unmarked step the input gate is closed (2e-9), so what the
candidate reads does not matter.  With a = 0.1, tanh(a v) ~ a v and tanh(c)
~ c, so y ~ v_i + v_j; the deviation is tanh's curvature, largest (0.03) for
sums near 2.

What LRP does with each (epsilon rule, signal-take-all): the relevance of y
goes to c_T, and from c_T to the two marked steps' products i g; there the
candidate g takes all of it, and the epsilon rule splits it over the inputs
of the candidate's pre-activation.  In the value control that is a v alone:
the value of each marked step gets the relevance, the marker (a gate input)
none, so the two marked steps are the two most relevant.  In the marker
control the pre-activation a v - a m + a has a marker term -a that cancels
the bias +a: the marker gets -a / (a v) = -1/v times the value's share, so
each marked step's token relevance (value + marker) is negative, below the
~0 of every unmarked step, and the signed token sum never ranks the marked
steps first -- while the value dimension alone still does.

Run from the repository root (numpy and safetensors):
    python3 tools/adding_controls.py             # tests/fixtures/adding/control-{value,marker}
    python3 tools/adding_controls.py --out DIR   # elsewhere
"""

import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "adding")

# The gate saturation and the candidate's scale (see the docstring).
K = 40.0
A = 0.1


def tensors(marker_in_candidate):
    """The PyTorch-layout tensors of one control (gate rows i, f, g, o)."""
    # Columns: value, marker.
    w_ih = np.zeros((4, 2))
    b_ih = np.zeros(4)
    w_ih[0] = [0.0, K]  # input gate reads the marker
    b_ih[0] = -K / 2
    b_ih[1] = K / 2  # forget gate open
    w_ih[2] = [A, -A if marker_in_candidate else 0.0]  # candidate
    b_ih[2] = A if marker_in_candidate else 0.0
    b_ih[3] = K / 2  # output gate open
    return {
        "encoder.weight_ih_l0": w_ih,
        "encoder.weight_hh_l0": np.zeros((4, 1)),
        "encoder.bias_ih_l0": b_ih,
        "encoder.bias_hh_l0": np.zeros(4),
        "head.weight": np.array([[1.0 / A]]),
    }


def forward(t, x):
    """The model's output for one sequence x [T, 2], in numpy (for the check)."""
    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    c = h = 0.0
    for step in x:
        z = t["encoder.weight_ih_l0"] @ step + t["encoder.bias_ih_l0"] + t["encoder.weight_hh_l0"][:, 0] * h
        i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
        c = f * c + i * g
        h = o * np.tanh(c)
    return t["head.weight"][0, 0] * h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    config = {
        "format": "lrp-model",
        "version": 1,
        "layout": "pytorch",
        "weights": "model.safetensors",
        "encoder": {"cell": "lstm", "input_size": 2, "hidden_size": 1, "num_layers": 1, "bidirectional": False},
        "attention": None,
        "head": {"input": "last", "num_classes": 1, "bias": False},
        "labels": ["sum"],
    }
    # The held-out set of the trained model, to report how close each
    # control computes the sum (and each other).
    heldout = np.load(os.path.join(DEFAULT_OUT, "heldout.npz"))
    outputs = {}
    for name, marker in [("control-value", False), ("control-marker", True)]:
        t = tensors(marker)
        directory = os.path.join(os.path.abspath(args.out), name, "model")
        os.makedirs(directory, exist_ok=True)
        save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in t.items()},
                  os.path.join(directory, "model.safetensors"))
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        outputs[name] = np.array([forward(t, heldout[k]) for k in heldout.files])
        sums = np.array([heldout[k][heldout[k][:, 1] == 1, 0].sum() for k in heldout.files])
        err = np.abs(outputs[name] - sums)
        print(f"{name}: held-out MAE {err.mean():.2e} (max {err.max():.2e}) -> {directory}")
    gap = np.abs(outputs["control-value"] - outputs["control-marker"]).max()
    print(f"largest difference between the two controls: {gap:.2e}")


if __name__ == "__main__":
    main()
