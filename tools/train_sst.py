"""Train the default SST-5 text model (BiLSTM + context attention + linear head).

What: a `RecurrentClassifier` (tools/pytorch_models.py) for five-class sentiment
on the Stanford Sentiment Treebank, with embeddings trained from scratch:
    embedding [V, E] -> 1-layer bidirectional LSTM (H per direction)
    -> context attention (size A; e_t = query . tanh(proj(h_t))) -> linear head (5).
Training data: every labelled phrase (all subtrees, root sentences included)
of DATA/train.txt, identical token sequences deduplicated (majority label);
DATA is --data, by default tests/fixtures/sst (the SST train, dev and test
trees ship with the repository).  The epoch is selected by dev sentence-level (root)
accuracy; the script reports test sentence-level accuracy (2210 sentences).

Run from the repository root:
    python3 tools/train_sst.py                # defaults = the shipped model
    python3 tools/train_sst.py --help         # hyper-parameters, --data, --out, --no-export
    python3 tools/train_sst.py --epochs 1 --limit 2000 --out /tmp/sst-smoke
                                              # a smoke run that leaves the shipped
                                              # model alone (a few minutes: the dev
                                              # and test evaluation is not limited)

Writes (unless --no-export):
    lrp-app/assets/sst-default/{config.json, model.safetensors, vocab.txt,
    TRAINING.md}
The model is exported in float32 in the `lrp-model` format (docs/model-format.md);
config.json additionally carries "unk_token": "<unk>" and "lowercase": true.
Tokens are normalised as tools/sst.py documents (PTB escapes, \\/ -> /,
lowercase).  vocab.txt line k is embedding row k; line 0 is "<unk>", then the
train tokens with frequency >= --min-freq in the train sentences, by
decreasing frequency (ties alphabetical).

Training uses a batched copy of the forward pass (padded batches, packed
sequences, masked attention softmax) over the very same submodules as
RecurrentClassifier; before export the script checks that the unbatched
RecurrentClassifier.forward reproduces the batched scores (1e-5), and after
export it reloads model.safetensors into a fresh RecurrentClassifier and
recomputes the test accuracy sentence by sentence.

Seeded (random, numpy, torch; --seed, default 1); 2 CPU threads.
Expected: about 10 minutes on 2 cores (6 epochs); test accuracy about 0.47
(see TRAINING.md in the output directory for the measured figures).
"""

import argparse
import collections
import json
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sst  # noqa: E402
from progress_line import Progress  # noqa: E402
from pytorch_models import MinRNN, RecurrentClassifier, export  # noqa: E402

DEFAULT_DATA = os.path.join(HERE, "..", "tests", "fixtures", "sst")
DEFAULT_OUT = os.path.join(HERE, "..", "lrp-app", "assets", "sst-default")
TEST_SENTENCE = "neither funny nor suspenseful nor particularly well-drawn ."


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="directory with train.txt, dev.txt and test.txt (SST trees)")
    p.add_argument("--limit", type=int, default=0,
                   help="train on the first N deduplicated phrases only (0: all); for smoke runs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--emb", type=int, default=80, help="E, embedding size")
    p.add_argument("--hidden", type=int, default=80, help="H, LSTM size per direction")
    p.add_argument("--cell", default="lstm", choices=["lstm", "mingru", "minlstm"],
                   help="the recurrent cell (the built-in model: lstm)")
    p.add_argument("--att", type=int, default=64, help="A, attention size")
    p.add_argument("--att-kind", default="context", choices=["context", "additive"])
    p.add_argument("--head-input", default="context", choices=["context", "context+last"])
    p.add_argument("--min-freq", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--emb-dropout", type=float, default=0.3)
    p.add_argument("--out-dropout", type=float, default=0.3)
    p.add_argument("--word-dropout", type=float, default=0.05,
                   help="prob. of replacing a token by <unk> (phrases of >= 2 tokens)")
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--no-export", action="store_true")
    return p.parse_args(argv)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_vocab(train_sents, min_freq):
    counts = collections.Counter(w for _, toks in train_sents for w in toks)
    words = sorted((w for w, c in counts.items() if c >= min_freq),
                   key=lambda w: (-counts[w], w))
    vocab = ["<unk>"] + [w for w in words if w != "<unk>"]
    return vocab, {w: i for i, w in enumerate(vocab)}


def dedupe_phrases(path):
    labels = collections.defaultdict(collections.Counter)
    order = []
    for lab, toks in sst.phrases(path):
        key = tuple(toks)
        if key not in labels:
            order.append(key)
        labels[key][lab] += 1
    return [(labels[k].most_common(1)[0][0], list(k)) for k in order]


def batched_forward(model, ids, lengths, emb_dropout=0.0, out_dropout=0.0):
    """Scores [B, C] for a padded batch ids [B, T] (lengths [B], CPU int64).

    Same math as RecurrentClassifier.forward per sequence: packing makes each
    direction see only the real tokens; padded positions get -inf scores in
    the attention softmax.
    """
    cfg = model.config
    x = model.embedding(ids)
    if emb_dropout > 0:
        x = nn.functional.dropout(x, emb_dropout, training=True)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    if isinstance(model.encoder, MinRNN):
        out, last = min_rnn_padded(model.encoder, x, lengths)
    else:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, _) = model.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # [B,T,D]
        # last = forward state after x_T, backward state after x_1 (top layer)
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)
    kind = cfg["attention"]["kind"]
    att = model.attention
    if kind == "context":
        e = torch.tanh(att.proj(out)) @ att.query  # [B, T]
    else:  # additive
        e = att.score(torch.tanh(att.key(out) + att.query(last)[:, None, :])).squeeze(-1)
    e = e.masked_fill(~mask, float("-inf"))
    w = torch.softmax(e, dim=1)
    context = torch.bmm(w.unsqueeze(1), out).squeeze(1)
    feat = context if cfg["head"]["input"] == "context" else torch.cat([context, last], 1)
    if out_dropout > 0:
        feat = nn.functional.dropout(feat, out_dropout, training=True)
    return model.head(feat)


def min_rnn_padded(encoder, x, lengths):
    """A one-layer bidirectional minGRU/minLSTM over a padded batch x [B, T, E]:
    (outputs [B, T, 2H], last [B, 2H]), per row the same math as
    RecurrentClassifier.encode. The forward direction reads the padding
    after the real tokens only; the backward one reads each row reversed
    within its own length (padding left where it is, after the reversed
    tokens), so neither sees padding before a real token."""
    assert encoder.num_layers == 1 and encoder.bidirectional
    t = torch.arange(x.shape[1])[None, :]
    flip = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # [B, T]
    gather = lambda v: torch.gather(v, 1, flip[:, :, None].expand(-1, -1, v.shape[2]))  # noqa: E731
    forward = encoder.direction(x, "l0")
    backward = gather(encoder.direction(gather(x), "l0_reverse"))
    rows = torch.arange(x.shape[0])
    last = torch.cat([forward[rows, lengths - 1], backward[:, 0]], dim=1)
    return torch.cat([forward, backward], dim=2), last


def encode(toks, w2i):
    return [w2i.get(w, 0) for w in toks]


def make_batches(data, batch, shuffle):
    """data: list of (label, ids). Length-bucketed batches."""
    idx = list(range(len(data)))
    if shuffle:
        random.shuffle(idx)
    chunk = batch * 50
    batches = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s:s + chunk], key=lambda i: len(data[i][1]))
        batches.extend(part[j:j + batch] for j in range(0, len(part), batch))
    if shuffle:
        random.shuffle(batches)
    return batches


def collate(data, b, word_dropout=0.0):
    lengths = torch.tensor([len(data[i][1]) for i in b], dtype=torch.long)
    ids = torch.zeros(len(b), int(lengths.max()), dtype=torch.long)
    for r, i in enumerate(b):
        seq = data[i][1]
        if word_dropout > 0 and len(seq) > 1:
            seq = [0 if random.random() < word_dropout else t for t in seq]
        ids[r, :len(seq)] = torch.tensor(seq)
    labels = torch.tensor([data[i][0] for i in b], dtype=torch.long)
    return ids, lengths, labels


@torch.no_grad()
def batched_scores(model, data, batch=256):
    model.eval()
    out = torch.zeros(len(data), model.config["head"]["num_classes"])
    for b in make_batches(data, batch, shuffle=False):
        ids, lengths, _ = collate(data, b)
        out[b] = batched_forward(model, ids, lengths)
    return out


def accuracy(scores, data):
    gold = torch.tensor([l for l, _ in data])
    return int((scores.argmax(1) == gold).sum()) / len(data)


@torch.no_grad()
def unbatched_accuracy(model, data):
    model.eval()
    correct = 0
    for lab, ids in data:
        s, _ = model(torch.tensor(ids, dtype=torch.long))
        correct += int(s.argmax().item() == lab)
    return correct / len(data)


def main():
    args = parse_args()
    torch.set_num_threads(2)
    seed_all(args.seed)
    t0 = time.time()

    data = args.data
    train_sents = list(sst.sentences(os.path.join(data, "train.txt")))
    vocab, w2i = build_vocab(train_sents, args.min_freq)
    phrases = dedupe_phrases(os.path.join(data, "train.txt"))
    if args.limit > 0:
        phrases = phrases[:args.limit]
    train = [(l, encode(t, w2i)) for l, t in phrases]
    dev = [(l, encode(t, w2i)) for l, t in sst.sentences(os.path.join(data, "dev.txt"))]
    test = [(l, encode(t, w2i)) for l, t in sst.sentences(os.path.join(data, "test.txt"))]
    print(f"vocab {len(vocab)}, train phrases {len(train)} (deduped), "
          f"dev {len(dev)}, test {len(test)}", flush=True)

    config = {
        "embedding": True,
        "vocab_size": len(vocab),
        "unk_token": "<unk>",
        "lowercase": True,
        "encoder": {"cell": args.cell, "input_size": args.emb, "hidden_size": args.hidden,
                    "num_layers": 1, "bidirectional": True},
        "attention": {"kind": args.att_kind, "size": args.att},
        "head": {"input": args.head_input, "num_classes": 5, "bias": True},
    }
    model = RecurrentClassifier(config).float()
    nn.init.normal_(model.embedding.weight, std=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    lossf = nn.CrossEntropyLoss()

    best = (-1.0, None, None)  # dev acc, epoch, state
    history = []
    epoch_times = []
    bar = None
    for epoch in range(1, args.epochs + 1):
        model.train()
        te = time.time()
        total, n = 0.0, 0
        batches = make_batches(train, args.batch, shuffle=True)
        if bar is None:
            # Every epoch has about as many batches as the first.
            bar = Progress(args.epochs * len(batches), "batches", "train")
        for b in batches:
            ids, lengths, labels = collate(train, b, args.word_dropout)
            scores = batched_forward(model, ids, lengths, args.emb_dropout, args.out_dropout)
            loss = lossf(scores, labels)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total += loss.item() * len(b)
            n += len(b)
            bar.advance()
        bar.clear()
        dev_acc = accuracy(batched_scores(model, dev), dev)
        test_acc = accuracy(batched_scores(model, test), test)
        history.append((epoch, total / n, dev_acc, test_acc))
        epoch_times.append(time.time() - te)
        print(f"epoch {epoch}: loss {total / n:.4f} dev {dev_acc:.4f} (test {test_acc:.4f}) "
              f"{time.time() - te:.0f}s", flush=True)
        if dev_acc > best[0]:
            best = (dev_acc, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    train_time = time.time() - t0

    dev_acc, best_epoch, state = best
    model.load_state_dict(state)
    model.eval()
    test_acc = accuracy(batched_scores(model, test), test)
    print(f"selected epoch {best_epoch}: dev {dev_acc:.4f} test {test_acc:.4f}; "
          f"training time {train_time:.0f}s", flush=True)

    # The unbatched reference forward must reproduce the batched scores.
    ref = RecurrentClassifier(json.loads(json.dumps(config))).float()
    ref.load_state_dict(state)
    ref.eval()
    sample = dev[:20] + sorted(dev, key=lambda d: len(d[1]))[:3] + sorted(dev, key=lambda d: -len(d[1]))[:3]
    bs = batched_scores(model, sample)
    with torch.no_grad():
        us = torch.stack([ref(torch.tensor(ids))[0] for _, ids in sample])
    diff = (bs - us).abs().max().item()
    print(f"batched vs unbatched RecurrentClassifier, {len(sample)} dev sentences: "
          f"max |diff| {diff:.2e}", flush=True)
    assert diff < 1e-5, diff

    if args.no_export:
        return
    out = os.path.abspath(args.out)
    labels = list(sst.LABELS)
    export(ref, out, vocab=vocab, labels=labels)

    # Verify the export: fresh model from model.safetensors, unbatched test accuracy.
    from safetensors.torch import load_file
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["unk_token"] == "<unk>" and cfg["lowercase"] is True
    with open(os.path.join(out, "vocab.txt"), encoding="utf8") as f:
        vocab2 = f.read().split("\n")[:-1]
    assert vocab2 == vocab and len(vocab2) == cfg["vocab_size"]
    fresh = RecurrentClassifier(cfg).float()
    tensors = load_file(os.path.join(out, "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in tensors.values())
    fresh.load_state_dict(tensors)
    fresh.eval()
    w2i2 = {w: i for i, w in enumerate(vocab2)}
    test2 = [(l, encode(t, w2i2)) for l, t in sst.sentences(os.path.join(data, "test.txt"))]
    test_acc2 = unbatched_accuracy(fresh, test2)
    print(f"reloaded export, unbatched test accuracy {test_acc2:.4f} "
          f"({round(test_acc2 * len(test2))}/{len(test2)})", flush=True)
    assert test_acc2 == test_acc, (test_acc2, test_acc)

    toks = sst.tokenize_text(TEST_SENTENCE)
    with torch.no_grad():
        s, w = fresh(torch.tensor(encode(toks, w2i2)))
    pred = int(s.argmax())
    unk = [t for t in toks if t not in w2i2]
    print(f"{TEST_SENTENCE!r}: tokens {toks}, unknown {unk}")
    print(f"  scores {[round(x, 4) for x in s.tolist()]} -> class {pred} ({labels[pred]}); "
          f"attention {[round(x, 3) for x in w.tolist()]}", flush=True)

    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    hp = {k: v for k, v in vars(args).items() if k not in ("out", "no_export", "data")}
    defaults = vars(parse_args([]))
    lines = [
        f"# {os.path.basename(out)}: training record",
        "",
        f"Bidirectional {args.cell} + {args.att_kind} attention + linear head, five-class SST sentiment, "
        "embeddings trained from scratch (no pretrained vectors).",
        "",
        "Command (from the repository root):",
        "",
        "    python3 tools/train_sst.py" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in sorted(hp.items()) if v != defaults[k])
        + ("" if out == os.path.abspath(DEFAULT_OUT) else f" --out {args.out}"),
        "",
        f"- seed: {args.seed} (random, numpy, torch); torch {torch.__version__}, "
        f"CPU, torch.set_num_threads(2)",
        f"- data: {os.path.relpath(data, os.path.join(HERE, '..'))}/{{train,dev,test}}.txt; "
        f"training on all labelled phrases of the "
        f"train trees, deduplicated by token sequence (majority label): {len(train)} phrases",
        f"- vocabulary: {len(vocab)} entries = `<unk>` (row 0) + train-sentence tokens with "
        f"frequency >= {args.min_freq}, by decreasing frequency (ties alphabetical); "
        "tokens normalised as in tools/sst.py (PTB escapes, `\\/` -> `/`, `\\*` -> `*`, lowercase)",
        f"- architecture: E={args.emb}, H={args.hidden} per direction (bidirectional, 1 layer), "
        f"attention {args.att_kind} size {args.att}, head input {args.head_input}, 5 classes",
        f"- optimisation: Adam lr {args.lr}, weight decay {args.weight_decay}, batch {args.batch}, "
        f"{args.epochs} epochs, grad-norm clip {args.clip}; embedding dropout {args.emb_dropout}, "
        f"dropout before the head {args.out_dropout}, word dropout to `<unk>` {args.word_dropout} "
        "(phrases of >= 2 tokens)",
        f"- all hyper-parameters: `{json.dumps(hp)}`",
        f"- selected epoch (best dev sentence accuracy): {best_epoch}",
        f"- training time (measured, incl. data loading and per-epoch dev/test evaluation): "
        f"{train_time:.0f} s on a shared 2-core machine (per-epoch times varied "
        f"{min(epoch_times):.0f}-{max(epoch_times):.0f} s with the load)",
        f"- dev sentence-level accuracy: {dev_acc:.4f} ({round(dev_acc * len(dev))}/{len(dev)})",
        f"- test sentence-level accuracy: {test_acc:.4f} "
        f"({round(test_acc * len(test))}/{len(test)}); recomputed with the unbatched "
        f"RecurrentClassifier from the exported model.safetensors: {test_acc2:.4f}",
        f"- batched vs unbatched scores on {len(sample)} dev sentences: max |diff| {diff:.1e}",
        f"- `{TEST_SENTENCE}` -> class {pred} ({labels[pred]}), "
        f"scores {[round(x, 4) for x in s.tolist()]}",
        f"- model directory size: {size} bytes (float32; config.json + model.safetensors "
        f"+ vocab.txt, without this file)",
        "",
        "Per epoch (loss, dev acc, test acc -- test shown for information only, "
        "selection uses dev):",
        "",
        "| epoch | train loss | dev | test |",
        "|---|---|---|---|",
    ] + [f"| {e} | {l:.4f} | {d:.4f} | {t:.4f} |" for e, l, d, t in history] + [""]
    with open(os.path.join(out, "TRAINING.md"), "w") as f:
        f.write("\n".join(lines))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {out} ({size} bytes)")


if __name__ == "__main__":
    main()
