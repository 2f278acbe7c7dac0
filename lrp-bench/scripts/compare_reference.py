#!/usr/bin/env python3
"""Side-by-side speed of `lrp explain` and the published numpy reference.

Usage (from the repository root, after `cargo build --release`):

    python3 lrp-bench/scripts/compare_reference.py --reference PATH/TO/LRP_for_LSTM

PATH/TO/LRP_for_LSTM is a checkout of github.com/ArrasL/LRP_for_LSTM that you
provide; nothing of it is copied into this project. Needs numpy.

What it does, all in one run on this machine:
1. Builds `batch.npz` in a temporary folder: the first N (default 500)
   sentences of tests/fixtures/sst/test.txt, each as seeded random vectors
   [T, 60] (the reference model's embeddings were never released; the cost
   depends only on T, E and H).
2. Times the reference: for every sentence, its `forward()` to get the
   predicted class, then `lrp(w, predicted, eps=0.001, bias_factor=0.0)`, as
   its notebook does. Its `LSTM_bidi` is built around the weights of
   tests/fixtures/reference/sst-bilstm/weights.npz (the same model) and its
   `set_input` is replaced by one that takes our vectors.
3. Times `target/release/lrp explain --model tests/fixtures/reference/sst-bilstm
   --vectors batch.npz --format json` as a whole process (loading and
   output included), best of --repeat runs.
4. Checks that both give the same token relevances (1e-8), then prints the
   times, tokens per second and the ratio.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="checkout of ArrasL/LRP_for_LSTM")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="runs of lrp; the best counts")
    parser.add_argument("--lrp", default="target/release/lrp")
    parser.add_argument("--threads", default=None, help="RAYON_NUM_THREADS for lrp")
    args = parser.parse_args()

    model_dir = "tests/fixtures/reference/sst-bilstm"
    lengths = sentences("tests/fixtures/sst/test.txt", args.sentences)
    rng = np.random.default_rng(2017)
    batch = [rng.normal(0.0, 0.5, size=(t, 60)) for t in lengths]
    tmp = tempfile.mkdtemp()
    batch_path = os.path.join(tmp, "batch.npz")
    np.savez(batch_path, **{f"s{k:04d}": x for k, x in enumerate(batch)})
    tokens = sum(lengths)

    # The reference, around our copy of its weights.
    sys.path.insert(0, args.reference)
    from code.LSTM.LSTM_bidi import LSTM_bidi  # noqa: E402  (the user's checkout)

    weights = np.load(os.path.join(model_dir, "weights.npz"))
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

    env = dict(os.environ)
    if args.threads:
        env["RAYON_NUM_THREADS"] = args.threads
    command = [args.lrp, "explain", "--model", model_dir, "--vectors", batch_path, "--format", "json"]
    best, output = float("inf"), None
    for _ in range(args.repeat):
        start = time.perf_counter()
        output = subprocess.run(command, check=True, capture_output=True, env=env).stdout
        best = min(best, time.perf_counter() - start)
    ours = [json.loads(line)["token_relevance"] for line in output.decode().splitlines()]

    worst = max(float(np.max(np.abs(np.array(a) - b) / (np.abs(b) + 1e-12 * np.max(np.abs(b)) + 1e-300)))
                for a, b in zip(ours, reference))
    print(f"sentences: {len(batch)}, tokens: {tokens}")
    print(f"numpy reference: {reference_seconds:.3f} s, {reference_seconds / len(batch) * 1e3:.3f} ms/sentence, "
          f"{tokens / reference_seconds:,.0f} tokens/s")
    print(f"lrp (best of {args.repeat}, whole process): {best:.4f} s, {best / len(batch) * 1e6:.1f} us/sentence, "
          f"{tokens / best:,.0f} tokens/s")
    print(f"ratio: {reference_seconds / best:.1f}x; largest relative difference of token relevance: {worst:.1e}")


if __name__ == "__main__":
    main()
