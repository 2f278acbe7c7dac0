#!/usr/bin/env python3
"""Real TensorFlow 1 LSTM graphs, converted to lrp's `tf1` layout by
tools/convert_tf1.py, with the scores TensorFlow computes.

Each model is a TF1 graph (graph mode, `tf.compat.v1`) of stock parts:
`tf.compat.v1.nn.rnn_cell.LSTMCell` (its default `forget_bias=1.0`, which
TF adds to the forget gate without storing it), run by
`tf.compat.v1.nn.dynamic_rnn` or, per layer, by
`tf.compat.v1.nn.bidirectional_dynamic_rnn` (the two directions' outputs
concatenated, forward first, feed the next layer), and a
`tf.compat.v1.layers.dense` head on the final state. For a bidirectional
layer that is `concat([fw_state.h, bw_state.h])` of the output states TF
returns: the forward cell's state after the last position and the backward
cell's after the first (it reads the sequence from its end), which is what
lrp's head input `last` reads. (`outputs[:, -1]` would not be: its
backward half has seen the last position only.)

Every variable, biases included, is redrawn uniform(-0.5, 0.5) from a
seeded numpy generator (LSTMCell starts its bias at zero, under which a
forgotten forget bias would still show, but a bias read from the wrong
gate block would not). The model is saved with `tf.compat.v1.train.Saver`
and converted from that checkpoint by tools/convert_tf1.py, run as a user
would run it; the converted tensors are compared with the graph's
variables. The same weights are built once in float64 (`dtype=tf.float64`
throughout; LSTMCell computes in its input's dtype) and once in float32.

What it writes (default --out tests/fixtures/frameworks/tf1-real):

  <name>/, <name>-f32/   the converted model directories: config.json
                         (layout "tf1", "forget_bias": 1.0), weights.npz
                         [+ vocab.txt]; for vector models also inputs.npz
                         (the inputs, x0, x1, ...) and expected.jsonl
                         (TensorFlow's scores, one {"scores": [...]} a
                         line), for `lrp check --vectors --expect`
  checkpoints/<name>[-f32]/model.ckpt.{index,data-00000-of-00001}
                         the raw checkpoints (a few KB each)
  cases.json             for every (model, input): the input (vectors
                         [T][E], or tokens), TensorFlow's scores
                         (`sess.run(logits)`), and for vector models the
                         gradient of the predicted class by `tf.gradients`

Run from the repo root with TensorFlow 2 and the legacy Keras 2 (`tf_keras`,
for `tf.compat.v1.layers.dense`):

    TF_USE_LEGACY_KERAS=1 python3 tools/export_tf1.py [--out DIR]

Needs tensorflow, tf_keras, numpy. Never needed by `cargo test`: the
generated files are committed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
CONVERT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_tf1.py")
SEED = 20260503
LENGTHS = [1, 6, 13]
VOCAB = [f"w{i}" for i in range(20)]
SCALE = 0.5

# name: (input width E, or ("emb", E)), hidden, layers, bidirectional, classes
MODELS = {
    "lstm-uni": (4, 5, 1, False, 3),
    "lstm-bi-2l": (3, 4, 2, True, 2),
    "lstm-emb-bi": (("emb", 5), 3, 1, True, 3),
}


def build(spec, dtype):
    """The graph: returns (input placeholder, logits, the cells' scopes per
    layer for convert_tf1.py's --layer)."""
    inp, hidden, layers, bi, classes = spec
    if isinstance(inp, tuple):
        x = v1.placeholder(tf.int32, [1, None], name="ids")
        table = v1.get_variable("embedding", [len(VOCAB), inp[1]], dtype=dtype)
        inputs = tf.nn.embedding_lookup(table, x)
    else:
        x = v1.placeholder(dtype, [1, None, inp], name="x")
        inputs = x
    scopes = []
    for k in range(layers):
        with v1.variable_scope(f"layer{k}" if layers > 1 else "encoder"):
            if bi:
                fw = v1.nn.rnn_cell.LSTMCell(hidden, dtype=dtype)
                bw = v1.nn.rnn_cell.LSTMCell(hidden, dtype=dtype)
                (out_fw, out_bw), (state_fw, state_bw) = v1.nn.bidirectional_dynamic_rnn(
                    fw, bw, inputs, dtype=dtype)
                inputs = tf.concat([out_fw, out_bw], axis=-1)
                final = tf.concat([state_fw.h, state_bw.h], axis=-1)
                prefix = v1.get_variable_scope().name
                scopes.append(f"{prefix}/bidirectional_rnn/fw/lstm_cell,{prefix}/bidirectional_rnn/bw/lstm_cell")
            else:
                cell = v1.nn.rnn_cell.LSTMCell(hidden, dtype=dtype)
                inputs, state = v1.nn.dynamic_rnn(cell, inputs, dtype=dtype)
                final = state.h
                scopes.append(f"{v1.get_variable_scope().name}/rnn/lstm_cell")
    logits = v1.layers.dense(final, classes, name="dense")
    return x, logits, scopes


def convert(prefix, directory, scopes, is_emb, vocab_path):
    command = [sys.executable, CONVERT, prefix, "--out", directory, "--head", "dense"]
    for s in scopes:
        command += ["--layer", s]
    if is_emb:
        command += ["--embedding", "embedding", "--vocab", vocab_path]
    subprocess.run(command, check=True)


def compare_with_variables(directory, values, spec, scopes):
    """The converted tensors are the graph's variables under lrp's names."""
    with np.load(os.path.join(directory, "weights.npz")) as archive:
        got = {n: archive[n] for n in archive.files}
    want = {"head.kernel": values["dense/kernel:0"], "head.bias": values["dense/bias:0"]}
    if isinstance(spec[0], tuple):
        want["embedding.weight"] = values["embedding:0"]
    for k, layer in enumerate(scopes):
        for side, scope in zip(["forward", "backward"], layer.split(",")):
            want[f"encoder.l{k}.{side}.kernel"] = values[f"{scope}/kernel:0"]
            want[f"encoder.l{k}.{side}.bias"] = values[f"{scope}/bias:0"]
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name, value in want.items():
        assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("tests", "fixtures", "frameworks", "tf1-real"),
                        help="the directory to (re)write (default: %(default)s)")
    args = parser.parse_args()
    v1.disable_eager_execution()
    if os.path.isdir(args.out):
        if os.listdir(args.out) and not os.path.isfile(os.path.join(args.out, "cases.json")):
            raise SystemExit(f"export_tf1: {args.out} is not empty and holds no cases.json: not overwritten")
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    vocab_path = os.path.join(args.out, "vocab.txt")
    with open(vocab_path, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    rng = np.random.default_rng(SEED)
    cases = []
    for name, spec in MODELS.items():
        is_emb = isinstance(spec[0], tuple)
        inputs = []
        for t in LENGTHS:
            if is_emb:
                inputs.append([VOCAB[i] for i in rng.integers(0, len(VOCAB), t)])
            else:
                inputs.append(rng.standard_normal((t, spec[0])))
        drawn = None  # the weights, drawn once in float64, by variable name
        for dtype, suffix in [(tf.float64, ""), (tf.float32, "-f32")]:
            graph = tf.Graph()
            with graph.as_default():
                v1.set_random_seed(SEED)
                x, logits, scopes = build(spec, dtype)
                target = v1.placeholder(tf.int32, [], name="target")
                gradient = None if is_emb else tf.gradients(logits[0, target], x)[0]
                variables = v1.global_variables()
                with v1.Session(graph=graph, config=v1.ConfigProto(
                        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)) as sess:
                    sess.run(v1.global_variables_initializer())
                    if drawn is None:
                        drawn = {v.name: rng.uniform(-SCALE, SCALE, v.shape.as_list()) for v in variables}
                    for v in variables:
                        v.load(drawn[v.name].astype(dtype.as_numpy_dtype), sess)
                    values = {v.name: sess.run(v) for v in variables}
                    prefix = os.path.join(args.out, "checkpoints", name + suffix, "model.ckpt")
                    os.makedirs(os.path.dirname(prefix))
                    v1.train.Saver().save(sess, prefix, write_meta_graph=False)
                    directory = os.path.join(args.out, name + suffix)
                    convert(prefix, directory, scopes, is_emb, vocab_path)
                    compare_with_variables(directory, values, spec, scopes)
                    expected = []
                    for data in inputs:
                        feed = ([[VOCAB.index(w) for w in data]] if is_emb
                                else data[None].astype(dtype.as_numpy_dtype))
                        scores = sess.run(logits, {x: feed})[0]
                        assert scores.dtype == dtype.as_numpy_dtype, scores.dtype
                        case = {"name": f"{name}{suffix}-T{len(data)}", "model": name + suffix,
                                "dtype": "f64" if dtype == tf.float64 else "f32",
                                "scores": scores.astype(np.float64).tolist(), "gradient": None}
                        if is_emb:
                            case["tokens"] = data
                        else:
                            k = int(np.argmax(scores))
                            g = sess.run(gradient, {x: feed, target: k})[0]
                            case["input"] = data.tolist()
                            case["gradient"] = {"target": k, "gradient": g.astype(np.float64).tolist()}
                        cases.append(case)
                        expected.append(case["scores"])
                    if not is_emb:
                        np.savez(os.path.join(directory, "inputs.npz"),
                                 **{f"x{k}": data for k, data in enumerate(inputs)})
                        with open(os.path.join(directory, "expected.jsonl"), "w") as f:
                            for s in expected:
                                f.write(json.dumps({"scores": s}) + "\n")
            # The Saver's bookkeeping file names an absolute path: not kept.
            os.remove(os.path.join(args.out, "checkpoints", name + suffix, "checkpoint"))
    os.remove(vocab_path)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"generated_by": "tools/export_tf1.py", "tensorflow": tf.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {len(MODELS)} models x 2 precisions")


if __name__ == "__main__":
    main()
