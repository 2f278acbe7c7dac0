"""The side-by-side table of docs/evaluation.md ("Their code beside ours"):
the measures of Ismail et al. 2020 computed by the authors' own code for
their methods (captum) and by `lrp groundtruth` for ours, on the same data,
the same trained LSTM and the same masks, as tools/ismail_reference.py left
them under WORK/results/SET/:

    theirs.csv               their summary (AUP, AUR, AUPR, "AUC" in percent)
    ours.json                lrp groundtruth (blanked cells 0)
    ours-blank.json          lrp groundtruth --blank-with a fresh background sample
    ours-their-metrics.csv   our maps scored by their code

Run from the repository root:
    python3 tools/ismail_compare.py --work /tmp/ismail-ref

prints one markdown table per measure (rows: sets and their mean over the
sets both scored; columns: theirs | ours, method by method) and the check
that their scoring code and ours agree on the same maps.
"""

import argparse
import csv
import json
import os

import numpy as np

#: Our sets in the order of tools/ismail_benchmark.py.
LAYOUTS = ["middle", "smallmiddle", "moving", "raretime", "rarefeature", "positional"]
BACKGROUNDS = ["gaussian", "ar", "harmonic"]
#: (heading, their method or None, our method or None).
COLUMNS = [
    ("Grad \\| sa", "Grad", "sa"),
    ("IG \\| ig", "IG", "ig"),
    ("FeatureAblation \\| occlusion", "FeatureAblation", "occlusion"),
    ("Occlusion (a time step)", "Occlusion", None),
    ("DeepLIFT", "DL", None),
    ("GradientSHAP", "GS", None),
    ("gi", None, "gi"),
    ("lrp", None, "lrp"),
    ("lrp:prop", None, "lrp:prop"),
    ("Random \\| random", "Random", "random"),
]
#: (heading, their CSV column, its scale, our JSON key, our file).
MEASURES = [
    ("AUP ↑", "AUP", 1.0, "aup", "ours.json"),
    ("AUR ↑", "AUR", 1.0, "aur", "ours.json"),
    ("AUPR ↑", "AUPR", 1.0, "aupr", "ours.json"),
    ("masked-accuracy area ↓ (their \"AUC\" / 100; ours with --blank-with a fresh background sample)",
     "AUC", 0.01, "masked_accuracy_area", "ours-blank.json"),
]
#: Their slots that carry our maps in ours-their-metrics.csv (tools/ismail_reference.py).
OUR_SLOTS = {"Grad": "sa", "IG": "ig", "DL": "lrp", "GS": "gi"}


def read_theirs(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return {row["Saliency_Methods"]: row for row in csv.DictReader(f)}


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt(v):
    return "–" if v is None else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="the --work directory of tools/ismail_reference.py")
    args = ap.parse_args()
    results = os.path.join(args.work, "results")
    sets = [f"{layout}-{kind}" for layout in LAYOUTS for kind in BACKGROUNDS
            if os.path.exists(os.path.join(results, f"{layout}-{kind}", "ours.json"))]
    data = {}
    for name in sets:
        d = os.path.join(results, name)
        data[name] = {"theirs": read_theirs(os.path.join(d, "theirs.csv")),
                      "cross": read_theirs(os.path.join(d, "ours-their-metrics.csv")),
                      "ours.json": read_json(os.path.join(d, "ours.json")),
                      "ours-blank.json": read_json(os.path.join(d, "ours-blank.json"))}
    scored = [n for n in sets if data[n]["theirs"] is not None]
    print(f"{len(sets)} sets; their code scored {len(scored)} (their models at 90% test accuracy or more); "
          f"{data[sets[0]]['ours.json']['n']} test samples a set.")
    for heading, their_key, scale, our_key, our_file in MEASURES:
        print(f"\n{heading}, theirs | ours:\n")
        print("| set (accuracy) | " + " | ".join(c[0] for c in COLUMNS) + " |")
        print("|---" * (len(COLUMNS) + 1) + "|")
        sums = {}
        for name in sets:
            theirs, ours = data[name]["theirs"], data[name][our_file]
            cells = []
            for i, (_, t, o) in enumerate(COLUMNS):
                tv = float(theirs[t][their_key]) * scale if (t and theirs) else None
                ov = ours["methods"][o][our_key] if (o and ours and o in ours["methods"]) else None
                if name in scored:
                    for side, v in (("t", tv), ("o", ov)):
                        if v is not None:
                            sums.setdefault((i, side), []).append(v)
                cells.append(" \\| ".join(fmt(v) for v, side in ((tv, t), (ov, o)) if side))
            accuracy = data[name]["ours.json"]["model_accuracy"]
            mark = "" if name in scored else " (not scored by their code)"
            print(f"| {name} ({accuracy:.2f}){mark} | " + " | ".join(cells) + " |")
        means = []
        for i, (_, t, o) in enumerate(COLUMNS):
            vals = [np.mean(sums[(i, side)]) if (i, side) in sums else None for side, m in (("t", t), ("o", o)) if m]
            means.append(" \\| ".join(fmt(v) for v in vals))
        print(f"| mean of the {len(scored)} scored | " + " | ".join(means) + " |")
    # One change at a time, where tools/ismail_reference.py ran its variants stage.
    with_variants = [n for n in scored if os.path.exists(os.path.join(results, n, "variants.csv"))]
    if with_variants:
        steps = [("Grad: softmax, \\|grad\\| (theirs)", "theirs", "Grad"),
                 ("logit, \\|grad\\|", "variants", "Grad"),
                 ("logit, grad² (our sa)", "ours", "sa"),
                 ("IG: softmax, random baseline (theirs)", "theirs", "IG"),
                 ("logit, random baseline", "variants", "IG"),
                 ("logit, zero baseline (our ig)", "ours", "ig"),
                 ("FeatureAblation: softmax (theirs)", "theirs", "FeatureAblation"),
                 ("logit (captum)", "variants", "FeatureAblation"),
                 ("logit (our occlusion)", "ours", "occlusion")]
        print(f"\nOne change at a time, mean over {', '.join(with_variants)}:\n")
        print("| measure | " + " | ".join(h for h, _, _ in steps) + " |")
        print("|---" * (len(steps) + 1) + "|")
        for heading, their_key, _, our_key, _ in MEASURES[:3]:
            cells = []
            for _, source, method in steps:
                vals = []
                for name in with_variants:
                    if source == "ours":
                        vals.append(data[name]["ours.json"]["methods"][method][our_key])
                    else:
                        table = data[name]["theirs"] if source == "theirs" else read_theirs(
                            os.path.join(results, name, "variants.csv"))
                        vals.append(float(table[method][their_key]))
                cells.append(fmt(np.mean(vals)))
            print(f"| {heading} | " + " | ".join(cells) + " |")
    # The same maps through both scoring codes.
    gaps = {"AUP": [], "AUR": [], "AUPR": [], "AUC": []}
    for name in sets:
        cross, ours, blank = data[name]["cross"], data[name]["ours.json"], data[name]["ours-blank.json"]
        if cross is None:
            continue
        for slot, method in OUR_SLOTS.items():
            for key, our_key in (("AUP", "aup"), ("AUR", "aur"), ("AUPR", "aupr")):
                gaps[key].append(abs(float(cross[slot][key]) - ours["methods"][method][our_key]))
            if blank is not None:
                gaps["AUC"].append(abs(float(cross[slot]["AUC"]) / 100 - blank["methods"][method]["masked_accuracy_area"]))
    n = len(gaps["AUP"])
    if n:
        print(f"\nOur maps ({', '.join(OUR_SLOTS.values())}) scored by their code and by lrp groundtruth, "
              f"{n} (set, method) pairs: largest difference AUP {max(gaps['AUP']):.1e}, "
              f"AUR {max(gaps['AUR']):.1e}, AUPR {max(gaps['AUPR']):.1e}; masked-accuracy area "
              f"(their fresh background sample per fraction vs ours, one) mean {np.mean(gaps['AUC']):.3f}, "
              f"largest {max(gaps['AUC']):.3f}." if gaps["AUC"] else "")


if __name__ == "__main__":
    main()
