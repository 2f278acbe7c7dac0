"""Train the subject-verb agreement model of the pointing game (Poerner et al. 2018).

Reference: N. Poerner, B. Roth, H. Schuetze, "Evaluating neural network
explanation methods using hybrid documents and morphosyntactic agreement",
ACL 2018 (the morphosyntactic agreement task).

Task: an English sentence prefix that stops right before its main verb; the
class is the number that verb must take, 0 "singular" or 1 "plural", which is
the number of the subject noun.  Between the subject and the verb stand 0 to 3
attractors, nouns of either number inside prepositional phrases or an object
relative clause, so the most recent noun is often the wrong cue.  An
explanation of the prediction should point at the subject noun; attractor nouns
of the other number are the distractors.

Grammar (templates, drawn with a seeded numpy generator; `make_sentence`):
    sentence   = NP(subject) attractor{0..3}       (the count uniform in 0..3)
    NP         = "the" [adjective] noun             (adjective with p = 1/4)
    attractor  = preposition NP                     "the key to the cabinets"
               | "that" NP(animate) verb            "the authors that the critic praises"
The relative clause is an object relative; its verb agrees with its own
(attractor) subject, another wrong cue.  At most one relative clause per
sentence; each attractor is a relative clause with p = 1/2 while none has been
used, else a prepositional phrase, so chains read "the boy near the cars behind
the house".  Every noun is singular or plural with p = 1/2; an attractor noun
is never the subject's own noun.  About 53% of the sentences have an attractor
of the other number.  The vocabulary (`VOCAB`, 46 lowercase words, no
punctuation) holds both forms of every noun and verb, so no unknown token is
needed.

Model: `RecurrentClassifier` (tools/pytorch_models.py) with config
    {"embedding": true, "vocab_size": 46,
     "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H,
                 "num_layers": 1, "bidirectional": false},
     "attention": null, "head": {"input": "last", "num_classes": 2, "bias": true},
     "labels": ["singular", "plural"], "lowercase": true}
Training: cross-entropy, Adam with cosine decay, gradient clipping 1.0,
mini-batches of freshly generated sentences (packed, so the batched forward
runs the same `embedding`, `encoder` and `head` and reads the state after each
sentence's last word); float32.  The checkpoint with the best validation
accuracy (ties: lower validation loss) is kept, converted with `model.double()`
and exported in float64.

Run from the repository root:
    python3 tools/train_agreement.py          # defaults = the shipped fixtures
    python3 tools/train_agreement.py --help   # hyper-parameters, --out, --no-export
    python3 tools/train_agreement.py --steps 200 --heldout 50 --out /tmp/agr-smoke

Writes (unless --no-export), into tests/fixtures/agreement/:
    model/config.json, model/model.safetensors, model/vocab.txt
                   via pytorch_models.export (vocab, labels, lowercase true)
    heldout.json   {"generated_by": "tools/train_agreement.py", "sequences": [
                   {"name": "s0000", "text": words joined by single spaces,
                    "output": the class to explain, the right verb
                    number, 0 or 1, "point": 0-based position of the
                    subject noun, "distractors": positions of the attractor
                    nouns of the other number}, ...]}
    README.md      description, command, seeds, accuracies, torch version
After export the script reloads the model directory into a fresh
RecurrentClassifier and checks that it reproduces the scores of every held-out
sentence to 1e-12, and that the accuracy is the one reported.

Seeds: training data and initialisation --seed (default 1; torch and numpy),
validation 1000 + seed, held-out set --heldout-seed (default 2018).  2 CPU
threads.
Measured with the defaults (E 24, H 48, 3000 steps x 128, Adam lr 3e-3 with
cosine decay; torch 2.15.0, 2 threads on a shared machine): training 26 s (a
rerun while other jobs loaded the machine took 448 s, with the same loss curve
and figures); validation accuracy 1.0000 after 250 steps already (loss 2e-5 at
the end); held-out accuracy 1.0000 (500 of 500), also on the 261 sentences with
an attractor of the other number.  The task is easy for the LSTM: the subject
is always the first noun, so it only has to keep that noun's number.  The
figures of the last export are in tests/fixtures/agreement/README.md.
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from progress_line import Progress  # noqa: E402
from pytorch_models import MinRNN, RecurrentClassifier, export  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "agreement")
LABELS = ["singular", "plural"]
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "mingru": "minGRU", "minlstm": "minLSTM"}

ADJECTIVES = ["old", "red", "small", "new"]
PREPOSITIONS = ["to", "near", "behind", "of", "with", "on", "under", "beside"]
# (singular, plural); the animate ones can be the subject of a relative clause
ANIMATE = [("author", "authors"), ("critic", "critics"), ("boy", "boys"),
           ("girl", "girls"), ("dog", "dogs"), ("teacher", "teachers")]
INANIMATE = [("key", "keys"), ("cabinet", "cabinets"), ("car", "cars"),
             ("house", "houses"), ("table", "tables"), ("book", "books")]
NOUNS = ANIMATE + INANIMATE
VERBS = [("praises", "praise"), ("likes", "like"), ("sees", "see"), ("knows", "know")]
VOCAB = (["the", "that"] + ADJECTIVES + PREPOSITIONS
         + [w for pair in NOUNS for w in pair] + [w for pair in VERBS for w in pair])
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
MAX_ATTRACTORS = 3


def noun_phrase(rng, lemma, plural):
    """["the", (adjective), noun]; returns the words and the noun's offset."""
    words = ["the"]
    if rng.random() < 0.25:
        words.append(ADJECTIVES[rng.integers(len(ADJECTIVES))])
    words.append(lemma[int(plural)])
    return words, len(words) - 1


def make_sentence(rng):
    """One prefix: dict with words, target, point, distractors, attractor kinds."""
    subject = NOUNS[rng.integers(len(NOUNS))]
    plural = bool(rng.random() < 0.5)
    words, point = noun_phrase(rng, subject, plural)
    distractors, kinds = [], []
    used_relative = False
    for _ in range(int(rng.integers(0, MAX_ATTRACTORS + 1))):
        relative = (not used_relative) and rng.random() < 0.5
        pool = ANIMATE if relative else NOUNS
        choices = [n for n in pool if n != subject]
        lemma = choices[rng.integers(len(choices))]
        a_plural = bool(rng.random() < 0.5)
        if relative:
            used_relative = True
            words.append("that")
            np_words, off = noun_phrase(rng, lemma, a_plural)
            position = len(words) + off
            words += np_words
            verb = VERBS[rng.integers(len(VERBS))]
            words.append(verb[int(a_plural)])  # the verb agrees with its own subject
            kinds.append("rc")
        else:
            words.append(PREPOSITIONS[rng.integers(len(PREPOSITIONS))])
            np_words, off = noun_phrase(rng, lemma, a_plural)
            position = len(words) + off
            words += np_words
            kinds.append("pp")
        if a_plural != plural:
            distractors.append(position)
    return {"words": words, "target": int(plural), "point": point,
            "distractors": distractors, "kinds": kinds}


def make_set(seed, n):
    rng = np.random.default_rng(seed)
    return [make_sentence(rng) for _ in range(n)]


def collate(sentences):
    """Padded ids [B, T], lengths [B], targets [B]."""
    ids = [torch.tensor([WORD_ID[w] for w in s["words"]]) for s in sentences]
    lengths = torch.tensor([len(x) for x in ids])
    targets = torch.tensor([s["target"] for s in sentences])
    return pad_sequence(ids, batch_first=True), lengths, targets


def batched_forward(model, ids, lengths):
    """Scores [B, 2]: per row the same math as RecurrentClassifier.forward.

    For torch's cells, packing makes h_n the state after each sentence's own
    last word; minGRU and minLSTM read the padded batch, and the state at a
    sentence's last word is read at that position (padding comes after it,
    and the recurrence runs forwards only)."""
    x = model.embedding(ids)
    if isinstance(model.encoder, MinRNN):
        out, _ = model.encoder(x)
        return model.head(out[torch.arange(len(lengths)), lengths - 1])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, h_n = model.encoder(packed)
    if isinstance(h_n, tuple):  # the LSTM's (h_n, c_n)
        h_n = h_n[0]
    return model.head(h_n[-1])


def evaluate(model, batch):
    """(accuracy, mean cross-entropy) on a collated batch."""
    ids, lengths, targets = batch
    with torch.no_grad():
        scores = batched_forward(model, ids, lengths)
        loss = nn.functional.cross_entropy(scores, targets).item()
        acc = (scores.argmax(1) == targets).float().mean().item()
    return acc, loss


def rate(flags):
    flags = list(flags)
    return (sum(flags) / len(flags) if flags else float("nan")), sum(flags), len(flags)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--emb", type=int, default=24, help="E, embedding size")
    ap.add_argument("--hidden", type=int, default=48, help="H, LSTM state size")
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "mingru", "minlstm"],
                    help="the recurrent cell (the shipped fixtures: lstm in agreement/, "
                         "mingru and minlstm in agreement-mingru/ and agreement-minlstm/)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--validation", type=int, default=2000, help="validation sentences")
    ap.add_argument("--heldout-seed", type=int, default=2018)
    ap.add_argument("--heldout", type=int, default=500, help="held-out sentences")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help="output directory (default: tests/fixtures/agreement)")
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    config = {
        "embedding": True,
        "vocab_size": len(VOCAB),
        "lowercase": True,
        "encoder": {"cell": args.cell, "input_size": args.emb, "hidden_size": args.hidden,
                    "num_layers": 1, "bidirectional": False},
        "attention": None,
        "head": {"input": "last", "num_classes": 2, "bias": True},
        "labels": LABELS,
    }
    model = RecurrentClassifier(config)
    val = collate(make_set(1000 + args.seed, args.validation))

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.lr / 30)
    best, best_state, best_step, running = (-1.0, 0.0), None, 0, 0.0
    seen = set()  # every training sentence, to count the held-out overlap
    t0 = time.time()
    bar = Progress(args.steps, "steps", "train")
    for step in range(1, args.steps + 1):
        sentences = [make_sentence(rng) for _ in range(args.batch)]
        seen.update(" ".join(s["words"]) for s in sentences)
        ids, lengths, targets = collate(sentences)
        loss = nn.functional.cross_entropy(batched_forward(model, ids, lengths), targets)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        bar.advance()
        if step % args.eval_every == 0 or step == args.steps:
            bar.clear()
            acc, vloss = evaluate(model, val)
            if (acc, -vloss) > best:
                best, best_state, best_step = (acc, -vloss), copy.deepcopy(model.state_dict()), step
            n = step % args.eval_every or args.eval_every
            print(f"step {step:6d}  train loss {running / n:.5f}  val acc {acc:.4f}  "
                  f"val loss {vloss:.5f}  ({time.time() - t0:.0f}s)", flush=True)
            running = 0.0
    bar.close()
    train_time = time.time() - t0
    model.load_state_dict(best_state)
    val_acc, val_loss = best[0], -best[1]
    print(f"training time {train_time:.1f}s, best step {best_step}, "
          f"val acc {val_acc:.4f}, val loss {val_loss:.5f}")
    model.double()
    model.eval()

    # held-out set, one sentence at a time through RecurrentClassifier.forward
    heldout = make_set(args.heldout_seed, args.heldout)
    scores = []
    with torch.no_grad():
        for s in heldout:
            ids = torch.tensor([WORD_ID[w] for w in s["words"]])
            scores.append(model(ids)[0].tolist())
    hb = collate(heldout)
    with torch.no_grad():
        batched = batched_forward(model, hb[0], hb[1])
    diff = (batched - torch.tensor(scores, dtype=torch.float64)).abs().max().item()
    assert diff < 1e-10, f"batched and unbatched forward differ by {diff}"
    correct = [int(np.argmax(sc)) == s["target"] for sc, s in zip(scores, heldout)]
    differing = [s["distractors"] != [] for s in heldout]
    unseen = [" ".join(s["words"]) not in seen for s in heldout]
    figures = {
        "all": rate(correct),
        "differing": rate(c for c, d in zip(correct, differing) if d),
        "no differing": rate(c for c, d in zip(correct, differing) if not d),
        "unseen": rate(c for c, u in zip(correct, unseen) if u),
    }
    for k in range(MAX_ATTRACTORS + 1):
        figures[f"{k} attractors"] = rate(
            c for c, s in zip(correct, heldout) if len(s["kinds"]) == k)
    figures["with a relative clause"] = rate(
        c for c, s in zip(correct, heldout) if "rc" in s["kinds"])
    for key, (acc, ok, n) in figures.items():
        print(f"held-out accuracy, {key}: {acc:.4f} ({ok}/{n})")
    if args.no_export:
        return

    out = os.path.abspath(args.out)
    mdir = os.path.join(out, "model")
    export(model, mdir, vocab=VOCAB, labels=LABELS, lowercase=True)
    records = [{"name": f"s{k:04d}", "text": " ".join(s["words"]), "output": s["target"],
                "point": s["point"], "distractors": s["distractors"]}
               for k, s in enumerate(heldout)]
    with open(os.path.join(out, "heldout.json"), "w") as f:
        f.write('{"generated_by": "tools/train_agreement.py",\n "sequences": [\n')
        f.write(",\n".join("  " + json.dumps(r) for r in records))
        f.write("\n ]}\n")

    # verification: a fresh model from the exported directory
    from safetensors.torch import load_file
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(mdir, "vocab.txt"), encoding="utf8") as f:
        vocab = f.read().split("\n")[:-1]
    assert vocab == VOCAB and cfg["vocab_size"] == len(vocab) and cfg["lowercase"] is True
    assert cfg["labels"] == LABELS and "unk_token" not in cfg
    fresh = RecurrentClassifier(cfg).double()
    tensors = load_file(os.path.join(mdir, "model.safetensors"))
    assert all(t.dtype == torch.float64 for t in tensors.values())
    fresh.load_state_dict(tensors)
    fresh.eval()
    with open(os.path.join(out, "heldout.json")) as f:
        written = json.load(f)
    assert written["generated_by"] == "tools/train_agreement.py"
    worst, ok = 0.0, 0
    with torch.no_grad():
        for r, sc in zip(written["sequences"], scores):
            words = r["text"].split(" ")
            assert words[r["point"]] in {w for pair in NOUNS for w in pair}
            assert int(words[r["point"]].endswith("s")) == r["output"]
            got = fresh(torch.tensor([vocab.index(w) for w in words]))[0]
            worst = max(worst, (got - torch.tensor(sc, dtype=torch.float64)).abs().max().item())
            ok += int(got.argmax().item() == r["output"])
    assert worst <= 1e-12, worst
    assert ok == figures["all"][1], (ok, figures["all"])
    print(f"verified: the reloaded model reproduces {len(records)} held-out scores "
          f"(max diff {worst:.1e}) and {ok} correct")

    def row(key):
        acc, k, n = figures[key]
        return f"| {key} | {n} | {k} | {acc:.4f} |"

    table = "\n".join(row(k) for k in figures)
    command = "python3 tools/train_agreement.py" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in sorted(vars(args).items())
        if name not in ("out", "no_export") and value != ap.get_default(name))
    if out != os.path.abspath(DEFAULT_OUT):
        command += f" --out {args.out}"
    n_diff = figures["differing"][2]

    def example(test):
        for r, s in zip(records, heldout):
            if test(s):
                return (f"| `{r['text']}` | {r['output']} | {r['point']} | "
                        f"{r['distractors']} |")
        return None

    examples = [example(lambda s: not s["kinds"]),
                example(lambda s: s["kinds"] == ["pp"] and s["distractors"]),
                example(lambda s: s["kinds"] == ["rc"] and s["distractors"]),
                example(lambda s: s["kinds"][:2] == ["pp", "pp"]),
                example(lambda s: len(s["kinds"]) == 3 and "rc" in s["kinds"])]
    examples = "\n".join(e for e in examples if e)
    readme = f"""# Subject-verb agreement fixtures (Poerner et al. 2018)

The morphosyntactic agreement task of Poerner, Roth, Schuetze (2018),
"Evaluating neural network explanation methods using hybrid documents and
morphosyntactic agreement" (ACL), on template sentences.  Each text is an
English sentence prefix that ends right before its main verb; the model
predicts the number that verb must take (class 0 `singular`, 1 `plural`),
which is the number of the subject noun.  Attractors (prepositional phrases,
an object relative clause) put nouns of either number between the subject and
the verb.  The pointing game: an explanation of the prediction should give the
subject noun (`point`) the most relevance, and not an attractor of the other
number (`distractors`).

Generated by `tools/train_agreement.py` (the grammar is in its docstring);
from the repository root:

    {command}

| file | content |
|---|---|
| `model/config.json`, `model/model.safetensors`, `model/vocab.txt` | `RecurrentClassifier` (`lrp-model`, layout `pytorch`, float64): embedding {len(VOCAB)} x {args.emb}, unidirectional 1-layer {CELL_NAMES[args.cell]}, hidden {args.hidden}, head on the last state, 2 classes (`singular`, `plural`) with bias, no attention; lowercase, no unknown token (every word of the grammar is in the vocabulary) |
| `heldout.json` | {len(records)} held-out sentences: `name`, `text` (the words, single spaces), `output` (the class to explain: the right verb number, 0 singular, 1 plural), `point` (0-based position of the subject noun), `distractors` (positions of the attractor nouns whose number differs from the subject's; empty when none) |

Held-out examples (no attractor; a prepositional phrase; a relative clause;
a chain of prepositional phrases; three attractors):

| text | output | point | distractors |
|---|---|---|---|
{examples}

{n_diff} of the {len(records)} held-out sentences have at least one attractor of the
other number.

Training: cross-entropy, Adam (lr {args.lr}, cosine decay to lr/30, gradient
clipping 1.0), {args.steps} steps of {args.batch} freshly generated sentences,
float32; the checkpoint with the best validation accuracy ({args.validation}
sentences, checked every {args.eval_every} steps; best at step {best_step}),
then converted to float64.  Seeds: training data and initialisation
{args.seed} (torch and numpy), validation {1000 + args.seed}, held-out set
{args.heldout_seed}.

Measured: training time {train_time:.0f} s on 2 CPU threads (a shared
machine); validation accuracy {val_acc:.4f} (loss {val_loss:.5f}).  Held-out
accuracy (torch float64, `RecurrentClassifier.forward`, one sentence at a
time):

| held-out sentences | n | correct | accuracy |
|---|---|---|---|
{table}

"differing": at least one attractor of the other number.  "unseen": not among
the {len(seen)} distinct sentences the training drew (short sentences recur,
so the held-out set overlaps the training stream; the grammar has only
{len(NOUNS) * 2 * (1 + len(ADJECTIVES))} sentences without an attractor).
torch {torch.__version__}, numpy {np.__version__}.

The script checks that a fresh `RecurrentClassifier` loaded from the model
directory reproduces every held-out score to 1e-12 (max difference
{worst:.1e}) and the number of correct predictions.
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
