#!/usr/bin/env python3
"""Side-by-side speed of `lrp explain` and the published numpy reference.

Usage (from the repository root, after `cargo build --release`):

    python3 lrp-bench/scripts/compare_reference.py --reference PATH/TO/LRP_for_LSTM

PATH/TO/LRP_for_LSTM is a checkout of github.com/ArrasL/LRP_for_LSTM that you
provide; nothing of it is copied into this project. Needs numpy. Takes about
a minute.

What it does, all in one run on this machine, for all 2,210 sentences of
tests/fixtures/sst/test.txt and for the first 500 (`--sets` changes that):
1. Builds `batch.npz` in a temporary folder: each sentence as seeded random
   vectors [T, 60] (the reference model's embeddings were never released;
   the cost depends only on T, E and H).
2. Times the reference: for every sentence, its `forward()` to get the
   predicted class, then `lrp(w, predicted, eps=0.001, bias_factor=0.0)`, as
   its notebook does. Its `LSTM_bidi` is built around the weights of
   tests/fixtures/reference/sst-bilstm/weights.npz (the same model) and its
   `set_input` is replaced by one that takes our vectors.
3. Times `target/release/lrp explain --model tests/fixtures/reference/sst-bilstm
   --vectors batch.npz --format json` as a whole process (start, reading,
   JSON writing included), best of --repeat runs: on all cores, with
   `--threads 1`, and with `--precision f32`.
4. Checks that the f64 runs give the reference's token relevances (1e-8),
   then prints a markdown table: times, tokens per second and the ratios
   (against the reference, two threads against one, f32 against f64).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np


def sentences(path, n):
    """Token counts of the first n trees of an SST file."""
    counts = []
    with open(path, encoding="utf8") as f:
        for line in f:
            counts.append(len(re.findall(r"\(\d ([^()\s]+)\)", line)))
            if len(counts) == n:
                break
    return counts


def run_lrp(args, batch_path, extra):
    """Best wall time of `lrp explain` over --repeat runs, and its output."""
    command = [args.lrp, "explain", "--model", MODEL_DIR, "--vectors", batch_path, "--format", "json", *extra]
    best, output = float("inf"), None
    for _ in range(args.repeat):
        start = time.perf_counter()
        output = subprocess.run(command, check=True, capture_output=True).stdout
        best = min(best, time.perf_counter() - start)
    return best, [json.loads(line)["token_relevance"] for line in output.decode().splitlines()]


MODEL_DIR = "tests/fixtures/reference/sst-bilstm"


def reference_network(reference):
    """The reference's LSTM_bidi around our copy of its weights, reading our vectors."""
    sys.path.insert(0, reference)
    from code.LSTM.LSTM_bidi import LSTM_bidi  # noqa: E402  (the user's checkout)

    weights = np.load(os.path.join(MODEL_DIR, "weights.npz"))
    net = LSTM_bidi.__new__(LSTM_bidi)
    for name in weights.files:
        setattr(net, name, weights[name])
    current = {}

    def set_input(self, w, delete_pos=None):
        x = current["x"]
        T, d = len(w), self.Wxh_Left.shape[0] // 4
        self.w, self.x, self.x_rev = w, x, x[::-1, :].copy()
        self.E = np.zeros((1, x.shape[1]))  # only its width is read
        self.h_Left, self.c_Left = np.zeros((T + 1, d)), np.zeros((T + 1, d))
        self.h_Right, self.c_Right = np.zeros((T + 1, d)), np.zeros((T + 1, d))

    LSTM_bidi.set_input = set_input
    return net, current


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="checkout of ArrasL/LRP_for_LSTM")
    parser.add_argument("--sets", default="2210,500", help="sentence counts to compare, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="runs of lrp; the best counts")
    parser.add_argument("--lrp", default="target/release/lrp")
    args = parser.parse_args()

    net, current = reference_network(args.reference)
    rows = []
    for count in [int(c) for c in args.sets.split(",")]:
        lengths = sentences("tests/fixtures/sst/test.txt", count)
        rng = np.random.default_rng(2017)
        batch = [rng.normal(0.0, 0.5, size=(t, 60)) for t in lengths]
        tmp = tempfile.mkdtemp()
        batch_path = os.path.join(tmp, "batch.npz")
        np.savez(batch_path, **{f"s{k:04d}": x for k, x in enumerate(batch)})
        tokens = sum(lengths)

        reference = []
        start = time.perf_counter()
        for x in batch:
            current["x"] = x
            w = list(range(len(x)))
            net.set_input(w)
            predicted = int(np.argmax(net.forward()))
            rx, rx_rev, _ = net.lrp(w, predicted, 0.001, 0.0)
            reference.append((rx + rx_rev).sum(axis=1))
        reference_seconds = time.perf_counter() - start

        runs = {
            "all cores": run_lrp(args, batch_path, []),
            "--threads 1": run_lrp(args, batch_path, ["--threads", "1"]),
            "--precision f32": run_lrp(args, batch_path, ["--precision", "f32"]),
        }
        for name in ["all cores", "--threads 1"]:
            worst = max(
                float(np.max(np.abs(np.array(a) - b) / (np.abs(b) + 1e-12 * np.max(np.abs(b)) + 1e-300)))
                for a, b in zip(runs[name][1], reference)
            )
            if worst > 1e-8:
                sys.exit(f"{name}: token relevance differs from the reference by {worst:.1e} (relative)")
        f64, one, f32 = runs["all cores"][0], runs["--threads 1"][0], runs["--precision f32"][0]

        def row(what, seconds, ratio):
            rows.append(f"| {count} | {what} | {seconds:.3f} s | {tokens / seconds:,.0f} | {ratio} |")

        row("numpy reference (forward, then LRP)", reference_seconds, "1x")
        row(f"`lrp explain`, f64, {os.cpu_count()} cores", f64, f"**{reference_seconds / f64:.1f}x**")
        row("`lrp explain --threads 1`, f64", one, f"{reference_seconds / one:.1f}x (2 cores: {one / f64:.2f}x this)")
        row("`lrp explain --precision f32`", f32, f"{reference_seconds / f32:.1f}x (f32: {f64 / f32:.2f}x f64)")
        print(f"{count} sentences, {tokens} tokens: agree with the reference to 1e-8", file=sys.stderr)

    print("| sentences | run (whole process) | time | tokens/s | against the reference |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
