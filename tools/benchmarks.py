"""Run every evaluation benchmark with the lrp binary, draw one figure per
benchmark into docs/figures/, and print the summary table of docs/evaluation.md.

Benchmarks (docs/evaluation.md, "Are the explanations right?"):
    deletion   SST test set, word deletion curves (Arras et al. 2017)
    eraser     SST test set, comprehensiveness and sufficiency (DeYoung et al. 2020)
    adding     the adding task's trained model, 500 held-out sequences (Arras et al. 2019)
    agreement  subject-verb agreement, 500 held-out prefixes (after Poerner et al. 2018)
    anbn, dyck the white-box LSTMs, 200 rejected strings each (after Hao 2020)
    alignment  an encoder-decoder trained to reverse, 500 held-out sequences (issue 15)
    ismail-middle-gaussian  a time series' box (Ismail et al. 2020), 20 held-out samples of
               one of the 18 sets; `python3 tools/ismail_benchmark.py --table` runs all 18

Python 3 standard library only; the numbers come from `lrp perturb` and
`lrp groundtruth`, whose JSON is also kept (--json-dir).

Run from the repository root, after `cargo build --release`:
    python3 tools/benchmarks.py                      # about 3 minutes on 2 cores
    python3 tools/benchmarks.py --lrp PATH/TO/lrp --figures DIR --json-dir DIR
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
METHODS = "lrp,lrp:prop,lrp:abs,lrp:half,sa,gi,occlusion,ig,random"

# (name, lrp arguments): the figure is FIGURES/name.svg.
GROUNDTRUTH = [
    ("adding", ["--model", "tests/fixtures/adding/model", "--data", "tests/fixtures/adding/heldout.npz"]),
    ("agreement", ["--model", "tests/fixtures/agreement/model", "--data", "tests/fixtures/agreement/heldout.json"]),
    ("anbn", ["--model", "tests/fixtures/whitebox/anbn/model", "--data", "tests/fixtures/whitebox/anbn/rejected.json"]),
    ("dyck", ["--model", "tests/fixtures/whitebox/dyck/model", "--data", "tests/fixtures/whitebox/dyck/rejected.json"]),
    ("alignment", ["--model", "tests/fixtures/seq2seq-reverse/model", "--data",
                   "tests/fixtures/seq2seq-reverse/heldout.json"]),
    ("ismail-middle-gaussian", ["--model", "tests/fixtures/ismail/middle-gaussian/model", "--data",
                                "tests/fixtures/ismail/middle-gaussian/heldout.npz"]),
]


def run(lrp, args):
    """One lrp command's JSON output."""
    started = time.time()
    out = subprocess.run([lrp, *args, "--format", "json"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    print(f"  {time.time() - started:5.1f} s  lrp {' '.join(args)}", file=sys.stderr)
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lrp", default=os.path.join(ROOT, "target", "release", "lrp"))
    ap.add_argument("--figures", default=os.path.join("docs", "figures"))
    ap.add_argument("--json-dir", default=None, help="keep each benchmark's JSON here")
    args = ap.parse_args()
    fig = lambda name: os.path.join(args.figures, f"{name}.svg")  # noqa: E731
    os.makedirs(os.path.join(ROOT, args.figures), exist_ok=True)

    results = {}
    results["sst"] = run(args.lrp, ["perturb", "--data", "tests/fixtures/sst/test.txt", "--methods", METHODS,
                                    "--plot", fig("deletion"), "--eraser-plot", fig("eraser")])
    for name, extra in GROUNDTRUTH:
        results[name] = run(args.lrp, ["groundtruth", *extra, "--methods", METHODS, "--plot", fig(name)])
    results["adding-value"] = run(args.lrp, ["groundtruth", *GROUNDTRUTH[0][1], "--methods", METHODS,
                                             "--dimension", "0"])
    if args.json_dir:
        os.makedirs(args.json_dir, exist_ok=True)
        for name, r in results.items():
            with open(os.path.join(args.json_dir, f"{name}.json"), "w") as f:
                json.dump(r, f, indent=1)

    # (heading, benchmark, reader): one column each.
    columns = [
        ("SST deletion AOPC ↑", "sst", lambda r, m: r["methods"][m]["correct"]["aopc"]),
        ("ERASER compr. ↑", "sst", lambda r, m: r["eraser"]["methods"][m]["comprehensiveness_aopc"]),
        ("ERASER suff. ↓", "sst", lambda r, m: r["eraser"]["methods"][m]["sufficiency_aopc"]),
        ("adding top-2 ↑", "adding", lambda r, m: r["methods"][m]["top2_accuracy"]),
        ("adding top-2, values ↑", "adding-value", lambda r, m: r["methods"][m]["top2_accuracy"]),
        ("agreement pointing ↑", "agreement", lambda r, m: r["methods"][m]["pointing_accuracy"]),
        ("attractor blamed ↓", "agreement", lambda r, m: r["methods"][m]["distractor_rate"]),
        ("aⁿbⁿ offender ↑", "anbn", lambda r, m: r["methods"][m]["pointing_accuracy"]),
        ("Dyck offender ↑", "dyck", lambda r, m: r["methods"][m]["pointing_accuracy"]),
        ("Dyck prefix share ↓", "dyck", lambda r, m: r["methods"][m]["neutral_share"]),
        ("reversal alignment ↑", "alignment", lambda r, m: r["methods"][m]["alignment_accuracy"]),
        ("box ROC AUC ↑", "ismail-middle-gaussian", lambda r, m: r["methods"][m]["roc_auc"]),
        ("box masked acc. ↓", "ismail-middle-gaussian", lambda r, m: r["methods"][m]["masked_accuracy_area"]),
    ]
    print("| method | " + " | ".join(c[0] for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for m in METHODS.split(","):
        cells = [f"{c[2](results[c[1]], m):.3f}" for c in columns]
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
