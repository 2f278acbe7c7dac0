"""Train a small BiLSTM on BasicMotions, a real multivariate time-series
classification set, and write the fixtures of tests/fixtures/motions.

The data: BasicMotions from the UEA multivariate time-series classification
archive (Bagnall et al. 2018, "The UEA multivariate time series
classification archive, 2018", arXiv:1811.00075), as the `aeon` package
ships it inside its wheel (aeon/datasets/data/BasicMotions, read by
`aeon.datasets.load_basic_motions`; nothing is downloaded). Four students
wore a smart watch while standing, walking, running and playing badminton;
each case is 10 s of its 3-D accelerometer and 3-D gyroscope sampled at
10 Hz: 6 channels x 100 steps, 40 training and 40 test cases, 10 per class
in each split. aeon's licence file (BSD-3-Clause) is the only one its
wheel carries; it states no separate terms for the data files. Cite the
archive's paper above when using them.

The model: tools/pytorch_models.py's RecurrentClassifier without embedding
or attention, a 1-layer bidirectional LSTM (input 6, hidden --hidden) whose
final states (forward after step 100, backward after step 1) feed a linear
head of 4 classes. It reads the raw sensor values (no normalisation layer,
so lrp sees exactly what the CSV holds). Trained in float32 on the 40
training cases, full batch, Adam, a fixed number of epochs (no model
selection on the test split), seeded; then converted with `model.double()`
and written with pytorch_models.export.

    python3 tools/train_motions.py          # writes tests/fixtures/motions
    python3 tools/train_motions.py --out DIR

Needs torch, numpy, safetensors and aeon (pip install aeon; measured with
aeon 1.6.0). Writes into --out:
- `model/config.json`, `model/model.safetensors`: the lrp model directory
  (float64), class names in `labels`;
- `test.csv`: the 40 test cases in the CSV layout of `lrp explain --vectors
  FILE.csv` (docs/cli.md): columns `case` (test0 .. test39, the archive's
  order), `activity` (the true class), `t` (seconds), then the channels
  acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z (the archive's order:
  accelerometer, then gyroscope), values as the archive writes them;
- `expected.json`: per case, its class, the scores torch computes in
  float64 for the values exactly as written in test.csv, and the predicted
  class; the test accuracy;
- `by-class/CLASS.csv`: the first correctly classified test case of each
  class alone (columns `t` and the channels), one series for `lrp explain
  --plot`; `--examples-only` writes just these from test.csv and
  expected.json (no training, no aeon);
- `README.md`: the provenance, command, seeds and figures.
The script reloads model.safetensors into a fresh RecurrentClassifier and
checks that it reproduces every recorded score to 1e-12.
"""

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pytorch_models import RecurrentClassifier, export  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "motions")
#: The archive's channel order: the watch's accelerometer, then its gyroscope.
CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
#: The archive's class order (its @classLabel line).
CLASSES = ["standing", "running", "walking", "badminton"]
#: Sampling rate of the watch, steps per second.
RATE_HZ = 10


def load(split):
    """The split's cases as float64 [N, T, C] (as written in the archive's
    text, 6 decimals) and their class indices [N]."""
    from aeon.datasets import load_basic_motions

    x, y = load_basic_motions(split=split)  # x [N, C, T], y class names
    x = np.asarray(x, dtype=np.float64).transpose(0, 2, 1)
    labels = np.array([CLASSES.index(str(name)) for name in y])
    return x, labels


def batched_scores(model, x):
    """x [B, T, C] -> [B, classes]; the math of RecurrentClassifier.forward
    with head input `last`, for a batch."""
    out, _ = model.encoder(x)
    h = model.config["encoder"]["hidden_size"]
    last = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)
    return model.head(last)


def write_examples(out):
    """by-class/CLASS.csv: the first test case of each class that the
    model classifies correctly (expected.json), its rows of test.csv
    without the case and activity columns."""
    with open(os.path.join(out, "expected.json")) as f:
        cases = json.load(f)["cases"]
    with open(os.path.join(out, "test.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    os.makedirs(os.path.join(out, "by-class"), exist_ok=True)
    for label, name in enumerate(CLASSES):
        case = next(c["case"] for c in cases if c["label"] == label and c["predicted"] == label)
        with open(os.path.join(out, "by-class", f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["t"] + CHANNELS)
            for row in rows:
                if row["case"] == case:
                    w.writerow([row["t"]] + [row[c] for c in CHANNELS])
        print(f"by-class/{name}.csv: {case}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--examples-only", action="store_true",
                    help="write only by-class/*.csv, from the test.csv and expected.json in --out")
    args = ap.parse_args()
    if args.examples_only:
        write_examples(args.out)
        return

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    config = {
        "encoder": {"cell": "lstm", "input_size": len(CHANNELS), "hidden_size": args.hidden,
                    "num_layers": 1, "bidirectional": True},
        "attention": None,
        "head": {"input": "last", "num_classes": len(CLASSES), "bias": True},
    }
    model = RecurrentClassifier(config)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs, eta_min=args.lr / 20)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    yt = torch.as_tensor(y_train)
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        loss = loss_fn(batched_scores(model, xt), yt)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if epoch % 50 == 0 or epoch == args.epochs:
            with torch.no_grad():
                train_acc = (batched_scores(model, xt).argmax(1) == yt).double().mean().item()
            print(f"epoch {epoch:4d}  loss {loss.item():.5f}  train accuracy {train_acc:.3f}  "
                  f"({time.time() - t0:.0f}s)", flush=True)
    train_time = time.time() - t0
    model.double()
    model.eval()

    out = args.out
    os.makedirs(out, exist_ok=True)
    export(model, os.path.join(out, "model"), labels=CLASSES)

    # The CSV first; the scores are then computed from the values as
    # written, so that lrp reading the CSV sees exactly what torch saw.
    csv_path = os.path.join(out, "test.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["case", "activity", "t"] + CHANNELS)
        for k, (series, label) in enumerate(zip(x_test, y_test)):
            for t, row in enumerate(series):
                w.writerow([f"test{k}", CLASSES[label], f"{t / RATE_HZ:.1f}"] + [repr(float(v)) for v in row])
    written = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            written.setdefault(row["case"], []).append([float(row[c]) for c in CHANNELS])

    cases, correct = [], 0
    with torch.no_grad():
        for k, label in enumerate(y_test):
            name = f"test{k}"
            scores, _ = model(torch.tensor(written[name], dtype=torch.float64))
            predicted = int(scores.argmax())
            correct += predicted == label
            cases.append({"case": name, "activity": CLASSES[label], "label": int(label),
                          "scores": [float(s) for s in scores], "predicted": predicted})
    accuracy = correct / len(y_test)
    with torch.no_grad():
        train_acc = (batched_scores(model, torch.as_tensor(x_train)).argmax(1).numpy() == y_train).mean()

    # A fresh module from the written weights must give the same scores.
    from safetensors.torch import load_file

    fresh = RecurrentClassifier(config).double()
    fresh.load_state_dict(load_file(os.path.join(out, "model", "model.safetensors")))
    worst = 0.0
    with torch.no_grad():
        for case in cases:
            scores, _ = fresh(torch.tensor(written[case["case"]], dtype=torch.float64))
            worst = max(worst, max(abs(a - b) for a, b in zip(scores.tolist(), case["scores"])))
    assert worst < 1e-12, f"reloaded model differs by {worst}"

    import aeon

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"generated_by": "tools/train_motions.py", "classes": CLASSES, "channels": CHANNELS,
                   "test_accuracy": accuracy, "train_accuracy": float(train_acc), "cases": cases}, f, indent=1)
        f.write("\n")
    readme = f"""# motions: a BiLSTM on BasicMotions (a real data set)

BasicMotions, from the UEA multivariate time-series classification archive
(Bagnall et al. 2018, "The UEA multivariate time series classification
archive, 2018", arXiv:1811.00075), as the `aeon` package (BSD-3-Clause,
version {aeon.__version__}) ships it inside its wheel. Four students wore a
smart watch while standing, walking, running and playing badminton; each case
is 10 s of its 3-D accelerometer and 3-D gyroscope at 10 Hz: 6 channels x 100
steps; 40 training and 40 test cases, 10 per class in each. aeon's licence
file (BSD-3-Clause) is the only one its wheel carries; it states no separate
terms for the data files. Cite the archive's paper above when using them.

Generated by `tools/train_motions.py`; from the repository root:

    pip install aeon torch safetensors
    python3 tools/train_motions.py

| file | content |
|---|---|
| `model/` | `RecurrentClassifier` (`lrp-model`, layout `pytorch`, float64): bidirectional 1-layer LSTM, input 6, hidden {args.hidden}, the final states of both directions into a linear head of 4 classes ({", ".join(CLASSES)}), no attention, no embedding, no normalisation (it reads the raw sensor values) |
| `test.csv` | the 40 test cases: `case` (test0 .. test39, the archive's order), `activity` (the true class), `t` (seconds), then {", ".join(CHANNELS)} |
| `expected.json` | per case: `activity`, `label`, the float64 `scores` torch computes for the values as written in test.csv, `predicted`; the accuracies |
| `by-class/CLASS.csv` | the first correctly classified test case of each class alone: `t` and the six channels (`python3 tools/train_motions.py --examples-only` writes just these) |

Training: cross-entropy, Adam (lr {args.lr}, cosine decay to lr/20, gradient
clipping 1.0), {args.epochs} full-batch epochs on the 40 training cases in
float32, no model selection; then converted to float64. Seed {args.seed}
(torch and numpy), 2 CPU threads, {train_time:.0f} s.

Measured: training accuracy {train_acc:.3f}; **test accuracy {accuracy:.3f}**
({correct} of {len(y_test)}). torch {torch.__version__}, numpy {np.__version__}.
A fresh `RecurrentClassifier` loaded from `model.safetensors` reproduces every
recorded score (max difference {worst:.1e}).
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme)
    write_examples(out)
    print(f"test accuracy {accuracy:.3f} ({correct}/{len(y_test)}); training {train_time:.0f}s; wrote {out}")


if __name__ == "__main__":
    main()
