"""Convert a TensorFlow 1 LSTM classifier checkpoint into an lrp model
directory (layout `tf1`).

TF1's `LSTMCell` / `BasicLSTMCell` keep one `kernel` `[in + H, 4H]` over
`[x; h]` and one `bias` `[4H]` per cell, gates i, j, f, o, and add
`forget_bias` (1.0 unless the cell was built with another) to the forget
gate at run time without storing it. The checkpoint does not say which
variables form the model, so name them:

    python3 tools/convert_tf1.py CKPT --list        # every variable and its shape
    python3 tools/convert_tf1.py CKPT --out DIR \\
        --layer bidirectional_rnn/fw/lstm_cell,bidirectional_rnn/bw/lstm_cell \\
        --head dense --embedding embedding/embeddings --vocab vocab.txt

`--layer FW[,BW]` once per stacked layer, bottom first: the variable scopes
holding `kernel` and `bias` (older checkpoints: `weights` and `biases`) of
the forward and, for a bidirectional layer, backward cell. `--head SCOPE`
names the dense layer's scope (`kernel` `[F, C]`, `bias`), or give
`--head-kernel NAME [--head-bias NAME]`. `--forget-bias` is written to the
config (default 1.0, TF's). CKPT is a checkpoint prefix (needs tensorflow, or
tensorflow's `tf.compat.v1`), or an `.npz` of the checkpoint's variables by
name (the same names), for a machine without TensorFlow.

Then compare with the scores TensorFlow computes (`sess.run(logits, ...)` on
a few inputs, one `{"scores": [...]}` a line):

    lrp check --model DIR --vectors X.npz --expect scores.jsonl

The head reads the final state: for a bidirectional layer, the forward
cell's state after the last position and the backward cell's after the
first (what `tf.nn.bidirectional_dynamic_rnn`'s output states hold).
"""

import argparse
import json
import os

import numpy as np


def fail(message):
    raise SystemExit(f"convert_tf1: {message}")


class Checkpoint:
    """Variables by name, from an npz or a TensorFlow checkpoint."""

    def __init__(self, path):
        if path.endswith(".npz"):
            with np.load(path) as archive:
                self.values = {name: archive[name] for name in archive.files}
            self.reader = None
        else:
            try:
                import tensorflow as tf
            except ImportError:
                fail("reading a checkpoint needs tensorflow; or give an .npz of its variables")
            self.reader = tf.train.load_checkpoint(path)
            self.values = None

    def names(self):
        if self.reader is None:
            return {name: list(v.shape) for name, v in self.values.items()}
        return dict(sorted(self.reader.get_variable_to_shape_map().items()))

    def get(self, name):
        if self.reader is None:
            if name not in self.values:
                fail(f"no variable {name!r} (see --list)")
            return np.asarray(self.values[name])
        if not self.reader.has_tensor(name):
            fail(f"no variable {name!r} (see --list)")
        return np.asarray(self.reader.get_tensor(name))

    def get_one_of(self, scope, names):
        have = self.names()
        for name in names:
            if f"{scope}/{name}" in have:
                return self.get(f"{scope}/{name}")
        fail(f"scope {scope!r} holds none of {names} (see --list)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint prefix, or an .npz of its variables")
    parser.add_argument("--list", action="store_true", help="print every variable and its shape, and stop")
    parser.add_argument("--out", help="the lrp model directory to write")
    parser.add_argument("--layer", action="append", default=[], help="FW[,BW]: the cell scopes of one layer")
    parser.add_argument("--head", help="the dense head's scope (kernel, bias)")
    parser.add_argument("--head-kernel", help="the head's kernel [F, C], by name")
    parser.add_argument("--head-bias", help="the head's bias [C], by name")
    parser.add_argument("--embedding", help="the embedding table [V, E], by name")
    parser.add_argument("--vocab", help="the vocabulary (line k = embedding row k), copied to DIR/vocab.txt")
    parser.add_argument("--forget-bias", type=float, default=1.0, help="the cells' forget_bias (TF's default 1.0)")
    args = parser.parse_args()
    checkpoint = Checkpoint(args.checkpoint)
    if args.list:
        for name, shape in checkpoint.names().items():
            print(f"{name}  {shape}")
        return
    if not args.out or not args.layer:
        fail("give --out and at least one --layer (see --list for the names)")
    tensors = {}
    directions = None
    hidden = None
    width = None
    for k, spec in enumerate(args.layer):
        scopes = spec.split(",")
        if len(scopes) not in (1, 2):
            fail(f"--layer {spec!r}: one scope, or two separated by a comma")
        if directions is None:
            directions = len(scopes)
        elif directions != len(scopes):
            fail("every layer must have the directions of the first")
        for side, scope in zip(["forward", "backward"], scopes):
            kernel = checkpoint.get_one_of(scope, ["kernel", "weights"])
            bias = checkpoint.get_one_of(scope, ["bias", "biases"])
            if kernel.ndim != 2 or kernel.shape[1] % 4 or bias.shape != (kernel.shape[1],):
                fail(f"{scope}: kernel {kernel.shape} and bias {bias.shape} are not an LSTMCell's [in + H, 4H], [4H]")
            h = kernel.shape[1] // 4
            if hidden is None:
                hidden = h
            elif hidden != h:
                fail(f"{scope}: H = {h}, the first layer has {hidden}")
            if k == 0 and width is None:
                width = kernel.shape[0] - h
            expected = width if k == 0 else directions * hidden
            if kernel.shape[0] != expected + h:
                fail(f"{scope}: kernel {kernel.shape} reads {kernel.shape[0] - h} inputs, expected {expected}")
            tensors[f"encoder.l{k}.{side}.kernel"] = kernel
            tensors[f"encoder.l{k}.{side}.bias"] = bias
    if args.head:
        head_kernel = checkpoint.get_one_of(args.head, ["kernel", "weights"])
        names = checkpoint.names()
        bias_name = next((f"{args.head}/{n}" for n in ["bias", "biases"] if f"{args.head}/{n}" in names), None)
        head_bias = checkpoint.get(bias_name) if bias_name else None
    elif args.head_kernel:
        head_kernel = checkpoint.get(args.head_kernel)
        head_bias = checkpoint.get(args.head_bias) if args.head_bias else None
    else:
        fail("give --head SCOPE or --head-kernel NAME")
    if head_kernel.shape[0] != directions * hidden:
        fail(f"the head's kernel {head_kernel.shape} does not read the final state [{directions * hidden}]")
    tensors["head.kernel"] = head_kernel
    if head_bias is not None:
        tensors["head.bias"] = head_bias
    config = {
        "format": "lrp-model", "version": 1, "layout": "tf1", "weights": "weights.npz",
        "encoder": {"cell": "lstm", "input_size": int(width), "hidden_size": int(hidden),
                    "num_layers": len(args.layer), "bidirectional": directions == 2,
                    "forget_bias": args.forget_bias},
        "attention": None,
        "head": {"input": "last", "num_classes": int(head_kernel.shape[1]), "bias": head_bias is not None},
    }
    if args.embedding:
        table = checkpoint.get(args.embedding)
        if table.ndim != 2 or table.shape[1] != width:
            fail(f"the embedding {table.shape} does not feed the first layer's {width} inputs")
        tensors["embedding.weight"] = table
        config.update({"embedding": True, "vocab_size": int(table.shape[0])})
    os.makedirs(args.out, exist_ok=True)
    if args.vocab:
        if not args.embedding:
            fail("--vocab needs --embedding")
        with open(args.vocab, encoding="utf8") as f:
            vocab = f.read().splitlines()
        with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf8") as f:
            f.write("\n".join(vocab) + "\n")
        config["vocab"] = "vocab.txt"
    np.savez(os.path.join(args.out, "weights.npz"), **tensors)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {args.out}: {json.dumps(config['encoder'])}")


if __name__ == "__main__":
    main()
