"""Runs the authors' own benchmark code (Ismail et al. 2020,
"Benchmarking deep learning interpretability in time series predictions",
NeurIPS 2020) beside `lrp groundtruth`, on the same data, the same trained
LSTM and the same masks, so that docs/evaluation.md can compare the two
number by number.

Their code is NOT part of this repository: give the path of a checkout of
their repository (TS-Interpretability-Benchmark) with --benchmark; this
script imports its Scripts/ modules from there and calls them as their
run_benchmark.py does, one data set at a time. It needs timesynth (their
data generator), captum (their saliency methods), scikit-learn and
matplotlib (their scripts import it) in the Python environment.

Per set (our names, e.g. `middle-gaussian`), into WORK/:
 1. their generator makes the data (their `createSimulationDataProcesses`,
    numpy seeded with --seed + k), 1000 training and 100 test samples;
 2. their `train_models` trains their LSTM (hidden 5, dropout 0.1, softmax
    output, Adam 1e-3, batches of 50, up to --epochs epochs, min-max scaled
    inputs, the best test accuracy kept);
 3. their `interpret` computes the saliency maps of their methods with
    captum (Grad, IG, DL, GS, DLS, SG, FeatureAblation, Occlusion; we leave
    out ShapleySampling and FeaturePermutation for time), and their
    `createMasks`, `getMaskedAccuracy`, `getPrecisionRecall` and
    `getAccuracyMetrics` score them: WORK/results/SET/theirs.csv;
 4. the trained LSTM is exported as an lrp model directory (the logits:
    their softmax is monotone, the class is the same) and the scaled test
    samples and their boxes as heldout.npz/heldout.json, and `lrp
    groundtruth` scores our methods: WORK/results/SET/ours.json;
 5. (blank) `lrp groundtruth --blank-with` one fresh background sample of
    their generator, scaled as the inputs: their masked accuracy puts such
    samples where cells are blanked (ours: 0 by default), WORK/results/SET/
    ours-blank.json;
 6. (variants) three of their captum methods on the logits, one change at a
    time (`logit_variants`), scored by their code: WORK/results/SET/variants.csv;
 7. (cross) our methods' maps (`lrp explain --per-dimension`, the label's class)
    go through THEIR scoring code too (their method slots reused:
    Grad <- our sa, IG <- our ig, DL <- our lrp, GS <- our gi; `lrp explain`
    gives no per-cell map of occlusion): WORK/results/SET/ours-their-metrics.csv.
    This separates a difference of metric code from one of methods.

Run from the repository root, e.g.
    python3 tools/ismail_reference.py --benchmark /tmp/tsbench --work /tmp/ismail-ref \\
        --sets middle-gaussian,rarefeature-gaussian --lrp target/debug/lrp
(--stages runs some steps only: data, train, theirs, ours, blank,
variants, cross) and then tools/ismail_compare.py makes the table. Seeds:
numpy, torch and random are seeded with --seed + k (k the set's index in
tools/ismail_benchmark.py's order) plus 0 (data), 100 (training), 200
(their methods), 300 (cross), 400 (blank), 500 (variants).
"""

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ismail_benchmark import LABELS, config  # noqa: E402
from pytorch_models import RecurrentClassifier, export  # noqa: E402

#: Our layout -> index into their run_benchmark.py lists. Their
#: "PostionalFeature" (index 9, FreezeType "Time") is the set whose time
#: position decides the class, which is our `positional`.
LAYOUT_INDEX = {"middle": 0, "smallmiddle": 1, "moving": 2, "raretime": 4, "rarefeature": 6, "positional": 9}
#: Our background -> their DataGenerationProcess (None: their "Box", N(0, 1)).
BACKGROUND = {"gaussian": None, "ar": "AutoRegressive", "harmonic": "Harmonic"}
#: Their method slots that carry our maps in step 5.
OUR_SLOTS = {"Grad": "sa", "IG": "ig", "DL": "lrp", "GS": "gi"}
THEIR_FLAGS = ["GradFlag", "IGFlag", "DLFlag", "GSFlag", "DLSFlag", "SGFlag", "ShapleySamplingFlag",
               "FeaturePermutationFlag", "FeatureAblationFlag", "OcclusionFlag"]
RESULT_DIRS = ["Saliency_Values", "Saliency_Masks", "Masked_Accuracy", "Precision_Recall", "Accuracy_Metrics"]


def their_names(name, rb):
    layout, kind = name.split("-")
    i = LAYOUT_INDEX[layout]
    gen = BACKGROUND[kind]
    data_name = rb.DatasetsTypes[i] + "_" + ("Box" if gen is None else gen)
    return i, gen, data_name


def namespace(rb, root, work, args):
    """Their argument namespace (their defaults), with our paths and sizes."""
    saved = sys.argv
    sys.argv = [saved[0]]
    try:
        ns = rb.parse_arguments([])
    finally:
        sys.argv = saved
    ns.plot = False
    ns.save = True
    ns.data_dir = os.path.join(work, "Datasets") + "/"
    ns.Graph_dir = os.path.join(work, "Graphs") + "/"
    for d, key in zip(RESULT_DIRS, ["Saliency_dir", "Mask_dir", "Masked_Acc_dir", "Precision_Recall_dir",
                                    "Acc_Metrics_dir"]):
        setattr(ns, key, os.path.join(root, d) + "/")
        os.makedirs(getattr(ns, key), exist_ok=True)
    ns.ignore_list = os.path.join(root, "ignore_list.txt")
    ns.log_file = os.path.join(root, "bad_model_acc.log")
    ns.NumTrainingSamples = args.train
    ns.NumTestingSamples = args.test
    ns.num_epochs = args.epochs
    return ns


def set_flags(ns, on):
    for flag in THEIR_FLAGS:
        setattr(ns, flag, flag in on)


def seed_all(seed):
    np.random.seed(seed)
    torch.manual_seed(seed)
    import random
    random.seed(seed)


def their_data(ns, work, data_name):
    def load(kind):
        return np.load(os.path.join(ns.data_dir, f"Simulated{kind}_{data_name}_F_50_TS_50.npy"))
    return load("TrainingData"), load("TestingData"), load("TestingMetaData")


def scaled_test(ns, work, data_name):
    """Their test set as their model sees it (min-max scaled per cell with
    the training set's range, as in their train_models.py) and its labels and boxes."""
    from sklearn.preprocessing import MinMaxScaler
    train, test, meta = their_data(ns, work, data_name)
    scaler = MinMaxScaler().fit(train.reshape(len(train), -1))
    return scaler.transform(test.reshape(len(test), -1)).reshape(test.shape), meta, scaler


def logits_model(their_lstm):
    """Their trained LSTM as our RecurrentClassifier (float64): the same
    weights, the logits instead of their softmax."""
    hidden = their_lstm.hidden_size
    model = RecurrentClassifier(config(hidden)).double()
    model.encoder.load_state_dict(their_lstm.rnn.state_dict())
    model.head.load_state_dict(their_lstm.fc.state_dict())
    return model.eval()


class Logits(torch.nn.Module):
    """Our model on a batch [B, T, C] -> logits [B, 2], for captum."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out, _ = self.model.encoder(x)
        return self.model.head(out[:, -1])


def logit_variants(model, x, labels):
    """Their captum methods on the logits instead of their softmax output,
    one change at a time (their slots): Grad <- captum's Saliency (|d z/d x|);
    IG <- integrated gradients from their random baseline (uniform in
    [0, 1), one per batch of 10, as their interpret.py draws it);
    FeatureAblation <- captum's per-cell ablation to 0 (our occlusion's definition)."""
    from captum.attr import FeatureAblation, IntegratedGradients, Saliency
    net = Logits(model)
    maps = {k: np.zeros(x.shape) for k in ("Grad", "IG", "FeatureAblation")}
    for b in range(0, len(x), 10):
        xb = torch.as_tensor(x[b:b + 10]).requires_grad_(True)
        yb = torch.as_tensor(labels[b:b + 10])
        baseline = torch.from_numpy(np.random.random(xb.shape))
        maps["Grad"][b:b + 10] = Saliency(net).attribute(xb, target=yb).detach().numpy()
        maps["IG"][b:b + 10] = IntegratedGradients(net).attribute(xb, baselines=baseline, target=yb).detach().numpy()
        maps["FeatureAblation"][b:b + 10] = FeatureAblation(net).attribute(xb, target=yb).detach().numpy()
    return maps


def write_ours(model, x, meta, out):
    """heldout.npz/json of the scaled test set, as tools/ismail_benchmark.py writes them."""
    arrays, cases = {}, []
    with torch.no_grad():
        out_, _ = model.encoder(torch.as_tensor(x))
        predicted = model.head(out_[:, -1]).argmax(dim=1).numpy()
    for i in range(len(x)):
        key = f"s{i:03d}"
        arrays[key] = x[i]
        label, t0, t1, c0, c1 = (int(v) for v in meta[i])
        cells = [[t, c] for t in range(t0, t1) for c in range(c0, c1)]
        cases.append({"name": key, "output": label, "mask": cells, "prediction": int(predicted[i])})
    np.savez(os.path.join(out, "heldout.npz"), **arrays)
    with open(os.path.join(out, "heldout.json"), "w") as f:
        json.dump({"generated_by": "tools/ismail_reference.py", "sequences": cases}, f)
    return float((predicted == meta[:, 0]).mean())


def our_maps(lrp, model_dir, x, labels, method, tmp):
    """Our per-cell relevance [N, T, C] of each sample's label, by `lrp explain --per-dimension`."""
    maps = np.zeros(x.shape)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        if len(idx) == 0:
            continue
        path = os.path.join(tmp, f"class{cls}.npz")
        np.savez(path, **{f"s{i:03d}": x[i] for i in idx})
        cmd = [lrp, "explain", "--model", model_dir, "--vectors", path, "--method", method,
               "--target", str(cls), "--per-dimension", "--format", "json"]
        lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        if len(rows) != len(idx):
            raise RuntimeError(f"lrp explain gave {len(rows)} explanations for {len(idx)} arrays")
        for i, row in zip(idx, rows):
            maps[i] = np.asarray(row["input_relevance"])
    return maps


def their_scoring(mods, ns, data_names, on):
    """Their scoring stages for one set, over the maps in ns.Saliency_dir."""
    set_flags(ns, on)
    lists = ([data_names[0]], [data_names[1]], ["LSTM"])
    summary = os.path.join(ns.Acc_Metrics_dir, "LSTM_preformance_summary.csv")
    if os.path.exists(summary):
        os.remove(summary)
    # Their interpret.py lists a set whose model is below 90% test accuracy
    # here and scores nothing for it (their getAccuracyMetrics then fails).
    ignored = data_names[0] + "_" + ("Box" if data_names[1] is None else data_names[1]) + "_LSTM"
    if os.path.exists(ns.ignore_list) and ignored in open(ns.ignore_list).read().split():
        return None
    mods["createMasks"].main(ns, *lists)
    mods["getMaskedAccuracy"].main(ns, *lists, torch.device("cpu"))
    mods["getPrecisionRecall"].main(ns, *lists)
    mods["getAccuracyMetrics"].main(ns, *lists)
    return summary


def keep_summary(summary, path):
    """Copies their summary of one set (None: not scored) to `path`."""
    if summary is not None:
        shutil.copy(summary, path)
    elif os.path.exists(path):
        os.remove(path)
    return summary is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--benchmark", required=True, help="a checkout of their TS-Interpretability-Benchmark")
    ap.add_argument("--work", required=True, help="where their data, models and results go")
    ap.add_argument("--sets", required=True, help="comma-separated, our names (e.g. middle-gaussian)")
    ap.add_argument("--lrp", default=os.path.join(HERE, "..", "target", "debug", "lrp"))
    ap.add_argument("--train", type=int, default=1000, help="training samples (theirs: 1000)")
    ap.add_argument("--test", type=int, default=100, help="test samples (theirs: 100)")
    ap.add_argument("--epochs", type=int, default=500, help="most epochs (theirs: 500)")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--methods", default="lrp,lrp:prop,lrp:abs,sa,gi,occlusion,ig,random",
                    help="our methods for lrp groundtruth")
    ap.add_argument("--stages", default="data,train,theirs,ours,blank,variants,cross",
                    help="which steps to run (data, train, theirs, ours, blank, variants, cross)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # Their scripts save whole modules with torch.save; torch >= 2.6 loads weights only by default.
    torch.load = functools.partial(torch.load, weights_only=False)
    scripts = os.path.join(os.path.abspath(args.benchmark), "Scripts")
    sys.path[:0] = [scripts, os.path.join(scripts, "Models")]
    import run_benchmark as rb  # their module: its lists of sets and its defaults
    mods = {m: __import__(m) for m in ["createMasks", "getMaskedAccuracy", "getPrecisionRecall",
                                       "getAccuracyMetrics"]}
    work = os.path.abspath(args.work)
    lrp = os.path.abspath(args.lrp)
    # Their train_models.py and interpret.py save to and load from "../Models/LSTM/".
    for d in ["run", "Models/LSTM", "Datasets", "Graphs"]:
        os.makedirs(os.path.join(work, d), exist_ok=True)
    os.chdir(os.path.join(work, "run"))
    stages = set(args.stages.split(","))
    all_sets = [f"{layout}-{kind}" for layout in LAYOUT_INDEX for kind in BACKGROUND]
    for name in [s for s in args.sets.split(",") if s]:
        k = all_sets.index(name)
        i, gen, data_name = their_names(name, rb)
        out = os.path.join(work, "results", name)
        os.makedirs(out, exist_ok=True)
        ns = namespace(rb, os.path.join(work, "Results"), work, args)
        dataset_lists = ([rb.DatasetsTypes[i]], [rb.ImpTimeSteps[i]], [rb.ImpFeatures[i]],
                         [rb.StartImpTimeSteps[i]], [rb.StartImpFeatures[i]], [rb.Loc1[i]], [rb.Loc2[i]],
                         [rb.FreezeType[i]], [rb.isMoving[i]], [rb.isPositional[i]], [gen])
        started = time.time()
        if "data" in stages:
            seed_all(args.seed + k)
            from createDatasets import createDatasets
            createDatasets(ns, *dataset_lists)
        if "train" in stages:
            seed_all(args.seed + k + 100)
            from train_models import main as train_models
            train_models(ns, [rb.DatasetsTypes[i]], [gen], ["LSTM"], torch.device("cpu"))
            print(f"{name}: trained in {time.time() - started:.0f} s", flush=True)
        model_file = os.path.join(work, "Models", "LSTM", f"Simulated{data_name}_BEST.pkl")
        their_lstm = torch.load(model_file, map_location="cpu").eval()
        x, meta, scaler = scaled_test(ns, work, data_name)
        labels = meta[:, 0].astype(int)
        if "theirs" in stages:
            seed_all(args.seed + k + 200)
            ns.batch_size = 10  # as run_benchmark.py does before interpret
            from interpret import main as interpret
            on = ["GradFlag", "IGFlag", "DLFlag", "GSFlag", "DLSFlag", "SGFlag", "FeatureAblationFlag",
                  "OcclusionFlag"]
            set_flags(ns, on)
            interpret(ns, [rb.DatasetsTypes[i]], [gen], ["LSTM"], torch.device("cpu"))
            summary = their_scoring(mods, ns, (rb.DatasetsTypes[i], gen), on)
            if not keep_summary(summary, os.path.join(out, "theirs.csv")):
                print(f"{name}: their model is below 90% test accuracy, their code scores nothing", flush=True)
            print(f"{name}: their methods scored, {time.time() - started:.0f} s", flush=True)
        model = logits_model(their_lstm)
        model_dir = os.path.join(out, "model")
        if "ours" in stages:
            export(model, model_dir, labels=LABELS)
            accuracy = write_ours(model, x, meta, out)
            cmd = [lrp, "groundtruth", "--model", model_dir, "--data", os.path.join(out, "heldout.npz"),
                   "--methods", args.methods, "--format", "json"]
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            result["model_accuracy"] = accuracy
            result["their_set"] = data_name
            with open(os.path.join(out, "ours.json"), "w") as f:
                json.dump(result, f, indent=1)
            print(f"{name}: lrp groundtruth done (accuracy {accuracy:.2f}), {time.time() - started:.0f} s",
                  flush=True)
        if "blank" in stages:
            # Their masked accuracy puts the cells of a fresh background
            # sample (scaled as the inputs) where cells are blanked; ours
            # puts 0 unless --blank-with gives the values.
            seed_all(args.seed + k + 400)
            from Helper import generateNewSample
            ns.DataGenerationProcess = gen
            blank = scaler.transform(generateNewSample(ns).reshape(1, -1)).reshape(x.shape[1:])
            np.save(os.path.join(out, "blank.npy"), blank)
            cmd = [lrp, "groundtruth", "--model", model_dir, "--data", os.path.join(out, "heldout.npz"),
                   "--methods", args.methods, "--format", "json", "--blank-with", os.path.join(out, "blank.npy")]
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            with open(os.path.join(out, "ours-blank.json"), "w") as f:
                json.dump(result, f, indent=1)
            print(f"{name}: lrp groundtruth --blank-with done, {time.time() - started:.0f} s", flush=True)
        if "variants" in stages:
            seed_all(args.seed + k + 500)
            var = namespace(rb, os.path.join(work, "Results-variants", name), work, args)
            from Helper import givenAttGetRescaledSaliency
            model_name = f"Simulated{data_name}_LSTM"
            for slot, maps in logit_variants(model, x, labels).items():
                rescaled = givenAttGetRescaledSaliency(var, maps, isTensor=False)
                np.save(os.path.join(var.Saliency_dir, f"{model_name}_{slot}_rescaled.npy"), rescaled)
            summary = their_scoring(mods, var, (rb.DatasetsTypes[i], gen), ["GradFlag", "IGFlag",
                                                                            "FeatureAblationFlag"])
            keep_summary(summary, os.path.join(out, "variants.csv"))
            print(f"{name}: their methods on the logits scored by their code, {time.time() - started:.0f} s",
                  flush=True)
        if "cross" in stages:
            seed_all(args.seed + k + 300)
            cross = namespace(rb, os.path.join(work, "Results-ours", name), work, args)
            from Helper import givenAttGetRescaledSaliency
            model_name = f"Simulated{data_name}_LSTM"
            for slot, method in OUR_SLOTS.items():
                maps = our_maps(lrp, model_dir, x, labels, method, out)
                np.save(os.path.join(out, f"map-{method}.npy"), maps.astype(np.float32))
                rescaled = givenAttGetRescaledSaliency(cross, maps, isTensor=False)
                np.save(os.path.join(cross.Saliency_dir, f"{model_name}_{slot}_rescaled.npy"), rescaled)
            summary = their_scoring(mods, cross, (rb.DatasetsTypes[i], gen),
                                    [s + "Flag" for s in OUR_SLOTS])
            keep_summary(summary, os.path.join(out, "ours-their-metrics.csv"))
            print(f"{name}: our maps scored by their code, {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
