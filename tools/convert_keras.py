"""Convert a Keras 3 `.keras` classifier into an lrp model directory (layout
`keras`), and write the scores Keras computes for `lrp check`.

Supported: `Input`, an optional `Embedding`, `LSTM` / `GRU` layers (plain,
or inside `Bidirectional` with merge_mode "concat"; every layer but the
last with return_sequences=True, the last with return_sequences=False, so
that the head reads the final state), `Dropout` (ignored at inference) and
one `Dense` head with a linear activation (the scores before any softmax).
Any other layer is refused by name.

    pip install keras h5py numpy   # and a backend: torch, jax or tensorflow
    python3 tools/convert_keras.py model.keras --out DIR --inputs X.npz
    lrp check --model DIR --vectors X.npz --expect DIR/expected.jsonl

`--inputs X.npz` holds one [T, E] array per input (token ids as a float
array [T, 1] would be wrong: for a model with an Embedding give `--texts
FILE` and `--vocab FILE` instead, one text a line, words split on spaces and
looked up in the vocabulary, whose line k is embedding row k;
`lrp check --text` then checks one text at a time).

    python3 tools/convert_keras.py model.keras --out DIR --vocab vocab.txt \
        --unk-token "<unk>" --lowercase --texts texts.txt

`--unk-token TOKEN` (a line of the vocabulary) is the entry every word
outside the vocabulary maps to, and `--lowercase` lowercases words before
the lookup, for a vocabulary built from lowercased text; both are written
to config.json (`unk_token`, `lowercase`), so that lrp reads text as the
model was trained to, and both apply to `--texts` here too. Without
`--unk-token` a word outside the vocabulary is an error naming it, here
and in lrp. lrp splits text as the treebank does (punctuation apart);
give `--texts` already split that way, one space between words.

The weights go to DIR/weights.npz under the names of layout `keras`
(docs/model-format.md): `encoder.l{k}.{forward,backward}.kernel` `[in, G H]`,
`.recurrent_kernel` `[H, G H]`, `.bias` (`[2, 3H]` for a GRU with
reset_after), `head.kernel` `[F, C]`, `head.bias`, `embedding.weight`.
The config records `recurrent_activation` (Keras 3's `hard_sigmoid` is
`relu6(x + 3) / 6`: `hard_sigmoid_keras3`) and, for a GRU, `gru_reset`
(`after` for reset_after=True, Keras' default, else `before`).
"""

import argparse
import json
import os

import numpy as np


def fail(message):
    raise SystemExit(f"convert_keras: {message}")


def activation_name(layer, key):
    value = layer.get_config()[key]
    return value if isinstance(value, str) else value.get("config", {}).get("name", str(value))


def recurrent_options(layer, backward=False):
    """The layer's cell, hidden size and the config keys its options need."""
    kind = type(layer).__name__
    if kind not in ("LSTM", "GRU"):
        fail(f"layer {layer.name!r} ({kind}) inside Bidirectional is not an LSTM or GRU")
    config = layer.get_config()
    if activation_name(layer, "activation") != "tanh":
        fail(f"layer {layer.name!r}: activation {activation_name(layer, 'activation')!r}; lrp's cells use tanh")
    gate = activation_name(layer, "recurrent_activation")
    gates = {"sigmoid": "sigmoid", "hard_sigmoid": "hard_sigmoid_keras3"}
    if gate not in gates:
        fail(f"layer {layer.name!r}: recurrent_activation {gate!r} is not sigmoid or hard_sigmoid")
    if bool(config.get("go_backwards")) != backward:
        fail(f"layer {layer.name!r} runs backwards on its own (go_backwards); use Bidirectional")
    if not config.get("use_bias", True):
        fail(f"layer {layer.name!r} has no bias (use_bias=False); lrp's layout keras expects one")
    options = {"recurrent_activation": gates[gate]}
    if kind == "GRU":
        options["gru_reset"] = "after" if config.get("reset_after", True) else "before"
    return kind.lower(), config["units"], options, config.get("return_sequences", False)


def direction_weights(layer):
    kernel, recurrent, bias = (np.asarray(w) for w in layer.get_weights())
    return kernel, recurrent, bias


def convert(model, directory):
    tensors = {}
    config = {"format": "lrp-model", "version": 1, "layout": "keras", "weights": "weights.npz"}
    encoder = None
    layers = 0
    head_seen = False
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Dropout"):
            continue
        if head_seen:
            fail(f"layer {layer.name!r} ({kind}) after the Dense head")
        if kind == "Embedding":
            if layers:
                fail(f"Embedding {layer.name!r} after a recurrent layer")
            table = np.asarray(layer.get_weights()[0])
            tensors["embedding.weight"] = table
            config.update({"embedding": True, "vocab_size": int(table.shape[0])})
            continue
        if kind in ("LSTM", "GRU", "Bidirectional"):
            if kind == "Bidirectional":
                if layer.merge_mode != "concat":
                    fail(f"Bidirectional {layer.name!r} merges with {layer.merge_mode!r}; lrp reads 'concat'")
                sides = [("forward", layer.forward_layer), ("backward", layer.backward_layer)]
            else:
                sides = [("forward", layer)]
            options = [recurrent_options(inner, side == "backward") for side, inner in sides]
            cell, units, extra, sequences = options[0]
            if len({json.dumps(o[:3], sort_keys=True) for o in options}) != 1:
                fail(f"the two directions of {layer.name!r} differ")
            for side, inner in sides:
                kernel, recurrent, bias = direction_weights(inner)
                prefix = f"encoder.l{layers}.{side}"
                tensors[f"{prefix}.kernel"] = kernel
                tensors[f"{prefix}.recurrent_kernel"] = recurrent
                tensors[f"{prefix}.bias"] = bias
                if layers == 0 and "embedding" not in config:
                    input_size = int(kernel.shape[0])
            current = {"cell": cell, "hidden_size": int(units), "bidirectional": len(sides) == 2, **extra}
            if encoder is None:
                encoder = dict(current)
                encoder["input_size"] = (int(tensors["embedding.weight"].shape[1])
                                         if "embedding.weight" in tensors else input_size)
            elif any(encoder[k] != v for k, v in current.items()):
                fail(f"layer {layer.name!r} differs from the first recurrent layer ({current} against {encoder})")
            layers += 1
            last_returns_sequences = sequences
            continue
        if kind == "Dense":
            if not layers:
                fail(f"Dense {layer.name!r} before any recurrent layer")
            if last_returns_sequences:
                fail("the last recurrent layer returns sequences; the head must read its final state")
            if activation_name(layer, "activation") != "linear":
                fail(f"Dense {layer.name!r} has activation {activation_name(layer, 'activation')!r}; "
                     "lrp explains the scores before it: convert a model whose head is linear")
            weights = [np.asarray(w) for w in layer.get_weights()]
            tensors["head.kernel"] = weights[0]
            if len(weights) > 1:
                tensors["head.bias"] = weights[1]
            config["head"] = {"input": "last", "num_classes": int(weights[0].shape[1]), "bias": len(weights) > 1}
            head_seen = True
            continue
        fail(f"layer {layer.name!r} ({kind}) is not supported (Embedding, LSTM, GRU, Bidirectional, Dense)")
    if not head_seen:
        fail("the model has no Dense head")
    encoder["num_layers"] = layers
    config["encoder"] = encoder
    config["attention"] = None
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "weights.npz"), **tensors)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .keras file")
    parser.add_argument("--out", required=True, help="the lrp model directory to write")
    parser.add_argument("--inputs", help="an npz of [T, E] arrays: write DIR/expected.jsonl with Keras' scores")
    parser.add_argument("--texts", help="texts, one a line (models with an Embedding; with --vocab)")
    parser.add_argument("--vocab", help="the vocabulary, line k = embedding row k: copied to DIR/vocab.txt")
    parser.add_argument("--unk-token", metavar="TOKEN",
                        help="the vocabulary entry unknown words map to (config unk_token; with --vocab)")
    parser.add_argument("--lowercase", action="store_true",
                        help="lowercase words before the lookup (config lowercase; with --vocab)")
    args = parser.parse_args()
    if (args.unk_token is not None or args.lowercase) and not args.vocab:
        fail("--unk-token and --lowercase describe the vocabulary: give --vocab")
    vocab = None
    if args.vocab:
        with open(args.vocab, encoding="utf8") as f:
            vocab = f.read().splitlines()
        if args.unk_token is not None and args.unk_token not in vocab:
            fail(f"--unk-token {args.unk_token!r} is not a line of {args.vocab}")
    import keras

    model = keras.saving.load_model(args.model)
    config = convert(model, args.out)
    if vocab is not None:
        if not config.get("embedding"):
            fail("--vocab: the model has no Embedding; it reads vectors, not text")
        with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf8") as f:
            f.write("\n".join(vocab) + "\n")
        config["vocab"] = "vocab.txt"
        if args.unk_token is not None:
            config["unk_token"] = args.unk_token
        if args.lowercase:
            config["lowercase"] = True
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
    batches = []
    if args.inputs:
        with np.load(args.inputs) as archive:
            batches = [archive[name][None] for name in archive.files]
    elif args.texts:
        if not args.vocab:
            fail("--texts needs --vocab")
        index = {}
        for k, w in enumerate(vocab):
            index.setdefault(w, k)  # a repeated line reads as its first, as in lrp

        def row(word):
            word = word.lower() if args.lowercase else word
            if word in index:
                return index[word]
            if args.unk_token is None:
                fail(f"--texts: {word!r} is not in the vocabulary (give --unk-token)")
            return index[args.unk_token]

        with open(args.texts, encoding="utf8") as f:
            batches = [np.array([[row(w) for w in line.split()]]) for line in f if line.strip()]
    if batches:
        with open(os.path.join(args.out, "expected.jsonl"), "w") as f:
            for batch in batches:
                scores = keras.ops.convert_to_numpy(model(batch, training=False))[0]
                f.write(json.dumps({"scores": [float(s) for s in scores]}) + "\n")
    print(f"wrote {args.out}: {json.dumps(config['encoder'])}")


if __name__ == "__main__":
    main()
