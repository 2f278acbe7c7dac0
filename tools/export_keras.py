#!/usr/bin/env python3
"""Real Keras 3 models in lrp's `keras` layout, with scores computed by Keras.

What it writes (under tests/fixtures/frameworks/keras/, from the repo root):

  <name>/            a model directory: config.json (layout "keras"),
                     weights.npz (float64) [+ vocab.txt]
  <name>-f32/        the same model built and run by Keras in float32,
                     weights.npz in float32
  cases.json         for every (model, input): the input (vectors [T][E] or
                     tokens), the scores [C] Keras computes, in f64 (Keras'
                     floatx float64) and f32 (floatx float32), and for the
                     vector models the gradient d scores[target] / d x [T][E]
                     of the predicted class, by torch's autograd through the
                     Keras model (torch backend).

The models are `keras.Sequential`s of stock layers: `Embedding` or vector
inputs, `LSTM` / `GRU` (sigmoid gates and Keras 3's `hard_sigmoid`, GRU with
`reset_after` True and False), `Bidirectional` (merge_mode "concat"),
stacked layers, and a `Dense` head on the last state. Every weight, biases
included, is redrawn uniform(-s, s) from a seeded numpy generator (Keras
initialises biases to zeros, which would test nothing); the hard-sigmoid
models use a larger s so that their gates really clip.

Run from the repo root with Keras 3 and its torch backend:

    KERAS_BACKEND=torch python3 tools/export_keras.py

Needs keras>=3, torch, numpy. Never needed by `cargo test`: the generated
files are committed.

Tensor names (docs/model-format.md, layout "keras"): per layer k and side
(forward, backward) `encoder.l{k}.{side}.kernel` [W_k, G H],
`.recurrent_kernel` [H, G H], `.bias` [G H] (GRU with reset_after: [2, 3H]);
`embedding.weight` [V, E]; `head.kernel` [F, C], `head.bias` [C].
"""

import json
import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

OUT = os.path.join("tests", "fixtures", "frameworks", "keras")
VOCAB = [f"w{i}" for i in range(20)]
LENGTHS = [1, 6, 13]
SEED = 20260501

# name: (cell, input (E or ("emb", E)), hidden, layers, bidirectional,
#        keras cell options, classes, head bias, weight scale)
MODELS = {
    "lstm-emb": ("lstm", ("emb", 5), 4, 1, False, {}, 3, True, 0.5),
    "lstm-hard-sigmoid": ("lstm", 4, 3, 1, False, {"recurrent_activation": "hard_sigmoid"}, 2, True, 2.0),
    "gru-reset-after": ("gru", 4, 5, 1, False, {"reset_after": True}, 3, True, 0.5),
    "gru-reset-before": ("gru", 4, 5, 1, False, {"reset_after": False}, 3, True, 0.5),
    "gru-before-hard-sigmoid": (
        "gru", 3, 4, 1, False, {"reset_after": False, "recurrent_activation": "hard_sigmoid"}, 2, True, 2.0),
    "bilstm": ("lstm", 4, 3, 1, True, {}, 2, False, 0.5),
    "bigru-before-stacked-emb": ("gru", ("emb", 5), 3, 2, True, {"reset_after": False}, 3, True, 0.5),
    "lstm-stacked-hard-sigmoid": ("lstm", 3, 4, 3, False, {"recurrent_activation": "hard_sigmoid"}, 2, True, 1.5),
}


def keep_float64():
    """Keras' type promotion maps float64 to float32 on every backend but
    TensorFlow (keras/src/backend/common/dtypes.py, BIT64_TO_BIT32_DTYPE,
    "aligned with JAX's default"), so under the torch backend a float64
    `ops.matmul` (the Dense head) rounds its result through float32 (seen:
    2e-8 relative). The TF backend keeps float64; so does this, by giving
    the torch backend TF's entry, which makes floatx float64 mean float64."""
    from keras.src.backend.common import dtypes

    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    x = np.array([[0.1, 0.2, 0.3]])
    k = np.array([[0.7], [0.11], [0.13]])
    keras.config.set_floatx("float64")
    got = keras.ops.convert_to_numpy(keras.ops.matmul(x, k))
    assert got.dtype == np.float64 and abs(got[0, 0] - (x @ k)[0, 0]) < 1e-16, got


def check_hard_sigmoid_is_keras3():
    """Keras 3's hard_sigmoid is relu6(x + 3) / 6, not Keras 2's clip(0.2 x + 0.5)."""
    got = keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(np.array([2.0, -2.9, 4.0])))
    assert np.allclose(got, [5.0 / 6.0, 0.1 / 6.0, 1.0]), got


def build(spec):
    cell, inp, hidden, layers, bi, options, classes, head_bias, _ = spec
    stack = []
    if isinstance(inp, tuple):
        stack += [keras.Input((None,), dtype="int32"), keras.layers.Embedding(len(VOCAB), inp[1])]
    else:
        stack.append(keras.Input((None, inp)))
    for k in range(layers):
        kind = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        rnn = kind(hidden, return_sequences=k + 1 < layers, **options)
        stack.append(keras.layers.Bidirectional(rnn, merge_mode="concat") if bi else rnn)
    stack.append(keras.layers.Dense(classes, use_bias=head_bias))
    return keras.Sequential(stack)


def named_weights(model, spec):
    """The model's weights under lrp's keras-layout names, in Keras' order."""
    cell, inp, hidden, layers, bi, options, classes, head_bias, _ = spec
    names = []
    if isinstance(inp, tuple):
        names.append("embedding.weight")
    for k in range(layers):
        for side in ["forward", "backward"] if bi else ["forward"]:
            names += [f"encoder.l{k}.{side}.{w}" for w in ["kernel", "recurrent_kernel", "bias"]]
    names.append("head.kernel")
    if head_bias:
        names.append("head.bias")
    weights = model.get_weights()
    assert len(weights) == len(names), (len(weights), names)
    return dict(zip(names, weights))


def config(spec, dtype_suffix):
    cell, inp, hidden, layers, bi, options, classes, head_bias, _ = spec
    emb = isinstance(inp, tuple)
    encoder = {"cell": cell, "input_size": inp[1] if emb else inp, "hidden_size": hidden,
               "num_layers": layers, "bidirectional": bi}
    if options.get("recurrent_activation") == "hard_sigmoid":
        encoder["recurrent_activation"] = "hard_sigmoid_keras3"
    if cell == "gru":
        encoder["gru_reset"] = "after" if options.get("reset_after", True) else "before"
    c = {"format": "lrp-model", "version": 1, "layout": "keras", "weights": "weights.npz"}
    if emb:
        c.update({"embedding": True, "vocab_size": len(VOCAB), "vocab": "vocab.txt"})
    c.update({"encoder": encoder, "attention": None,
              "head": {"input": "last", "num_classes": classes, "bias": head_bias}})
    return c


def write_model(directory, spec, weights, dtype):
    os.makedirs(directory)
    np.savez(os.path.join(directory, "weights.npz"), **{k: v.astype(dtype) for k, v in weights.items()})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config(spec, dtype), f, indent=2)
        f.write("\n")
    if isinstance(spec[1], tuple):
        with open(os.path.join(directory, "vocab.txt"), "w") as f:
            f.write("\n".join(VOCAB) + "\n")


def scores_and_gradient(model, x, is_emb, dtype):
    """Keras' scores for one sequence, and for vector inputs the gradient of
    the predicted class by torch autograd through the Keras model."""
    if is_emb:
        s = keras.ops.convert_to_numpy(model(np.array([x], dtype="int32")))[0]
        return s, None
    xt = torch.tensor(np.array([x], dtype=dtype), requires_grad=True)
    s = model(xt)[0]
    target = int(torch.argmax(s))
    (g,) = torch.autograd.grad(s[target], xt)
    return s.detach().numpy(), {"target": target, "gradient": g[0].numpy().astype(np.float64).tolist()}


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    check_hard_sigmoid_is_keras3()
    keep_float64()
    rng = np.random.default_rng(SEED)
    cases = []
    for name, spec in MODELS.items():
        is_emb = isinstance(spec[1], tuple)
        scale = spec[8]
        # The inputs, drawn once and fed to both precisions.
        inputs = []
        for t in LENGTHS:
            if is_emb:
                inputs.append([VOCAB[i] for i in rng.integers(0, len(VOCAB), t)])
            else:
                inputs.append(rng.standard_normal((t, spec[1])).tolist())
        weights = None
        for floatx, suffix, dtype in [("float64", "", "float64"), ("float32", "-f32", "float32")]:
            keras.config.set_floatx(floatx)
            keras.utils.set_random_seed(SEED)
            model = build(spec)
            if weights is None:
                weights = [rng.uniform(-scale, scale, w.shape) for w in model.get_weights()]
            model.set_weights([w.astype(dtype) for w in weights])
            write_model(os.path.join(OUT, name + suffix), spec, named_weights(model, spec), dtype)
            for x in inputs:
                ids = [VOCAB.index(w) for w in x] if is_emb else x
                s, grad = scores_and_gradient(model, ids, is_emb, dtype)
                case = {"name": f"{name}{suffix}-T{len(x)}", "model": name + suffix,
                        "dtype": "f64" if dtype == "float64" else "f32",
                        "scores": np.asarray(s, dtype=np.float64).tolist(),
                        "gradient": grad}
                case["tokens" if is_emb else "input"] = x
                cases.append(case)
    keras.config.set_floatx("float32")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generated_by": "tools/export_keras.py", "keras": keras.__version__,
                   "backend": keras.backend.backend(), "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {len(MODELS)} models x 2 precisions")


if __name__ == "__main__":
    main()
