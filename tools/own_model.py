"""A text classifier written as people write one in PyTorch, and the
fixtures of issue 26 ("your own model in five minutes") made from it.

`OwnClassifier` is deliberately NOT tools/pytorch_models.py's
RecurrentClassifier: its attributes are `emb`, `lstm` (or `gru`) and `fc`,
it reads batches `[B, T]` of token ids (`batch_first=True`), and its head
reads the standard idiom `torch.cat((h_n[-2], h_n[-1]), dim=1)`, the final
states of both directions of the top layer of a 2-layer bidirectional
LSTM or GRU. The lrp tests explain it from Python (`lrp_rnn.Model.from_torch`)
and from the CLI (a directory written by `Model.save`), and the ONNX tests
export the same class with `torch.onnx.export`.

    python3 tools/own_model.py            # writes tests/fixtures/own-model/{lstm,gru}
    python3 tools/own_model.py --out DIR  # elsewhere

Each directory holds:
- `state_dict.pt`: `torch.save(model.state_dict())` (float32, as trained);
  load it with `OwnClassifier(len(vocab), cell=...).load_state_dict(...)`;
- `weights.npz`: the same tensors under the same names, for numpy alone;
- `vocab.txt`: one word a line, line k = embedding row k; `<unk>` first;
- `expected.jsonl`: for each text of TEXTS, a line `{"text", "ids",
  "scores_f32", "scores_f64"}`: the scores torch computes for it in
  float32 (as trained) and in float64 (`model.double()`, the same weights);
- `model/`: the model directory `lrp_rnn.Model.from_torch(...).save()`
  writes from the float64 module (when lrp_rnn is installed), which
  `lrp explain --model` reads without torch.

Texts are lowercase words split by spaces (no punctuation), so that
`text.lower().split()` is exactly how lrp tokenises them; a word outside
the vocabulary maps to `<unk>`. Seeded: the same files each run on the
same torch version (trained in a few seconds on one core).
"""

import argparse
import json
import os

import numpy as np
import torch
from torch import nn

#: The tiny training set: (text, class), 1 = positive.
DATA = [
    ("a fine and moving film", 1),
    ("a dull and lifeless film", 0),
    ("the best story this year", 1),
    ("the worst story this year", 0),
    ("warm funny and wise", 1),
    ("cold boring and silly", 0),
    ("i loved every minute", 1),
    ("i hated every minute", 0),
    ("a moving and funny story", 1),
    ("a boring and dull story", 0),
    ("wise and warm acting", 1),
    ("silly and cold acting", 0),
]

#: The texts whose scores torch records (one with a capital and a word
#: outside the vocabulary, which lrp reads with lowercase and `<unk>`).
TEXTS = [
    "a fine and moving film",
    "the worst story this year",
    "i loved every boring minute",
    "Wise acting in a dull unknown film",
    "funny",
]

UNK = "<unk>"
LABELS = ["negative", "positive"]
EMBED, HIDDEN = 8, 6


class OwnClassifier(nn.Module):
    """Embedding, a 2-layer bidirectional LSTM or GRU, and a linear head on
    the top layer's final states of both directions.

    `forward(ids [B, T]) -> scores [B, C]`. The recurrent module is the
    attribute `lstm` for `cell="lstm"` and `gru` for `cell="gru"`.
    """

    def __init__(self, vocab_size, cell="lstm", embed=EMBED, hidden=HIDDEN, classes=len(LABELS)):
        super().__init__()
        self.cell = cell
        self.emb = nn.Embedding(vocab_size, embed)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        setattr(self, cell, rnn(embed, hidden, num_layers=2, bidirectional=True, batch_first=True))
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, ids):
        out, state = getattr(self, self.cell)(self.emb(ids))
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM returns (h_n, c_n)
        return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))


def build_vocab(data=DATA):
    """`<unk>` first, then every training word in sorted order."""
    return [UNK] + sorted({w for text, _ in data for w in text.split()})


def token_ids(text, vocab):
    """The ids lrp reads for `text`: lowercased words, unknown ones `<unk>`."""
    index = {w: k for k, w in enumerate(vocab)}
    return [index.get(w, index[UNK]) for w in text.lower().split()]


def train(cell, vocab, seed, epochs=40):
    """An OwnClassifier trained on DATA, one sentence a batch (seeded)."""
    torch.manual_seed(seed)
    model = OwnClassifier(len(vocab), cell=cell)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for k in order.permutation(len(DATA)):
            text, label = DATA[k]
            scores = model(torch.tensor([token_ids(text, vocab)]))
            loss = nn.functional.cross_entropy(scores, torch.tensor([label]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def write(out, cell, seed):
    """The fixtures of one cell kind in `out` (see the module's doc)."""
    vocab = build_vocab()
    model = train(cell, vocab, seed)
    os.makedirs(out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out, "state_dict.pt"))
    np.savez(os.path.join(out, "weights.npz"), **{k: v.numpy() for k, v in model.state_dict().items()})
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf8") as f:
        f.write("".join(w + "\n" for w in vocab))
    double = OwnClassifier(len(vocab), cell=cell).double()
    double.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    double.eval()
    with open(os.path.join(out, "expected.jsonl"), "w") as f, torch.no_grad():
        for text in TEXTS:
            ids = token_ids(text, vocab)
            f32 = model(torch.tensor([ids]))[0].tolist()
            f64 = double(torch.tensor([ids]))[0].tolist()
            f.write(json.dumps({"text": text, "ids": ids, "scores_f32": f32, "scores_f64": f64}) + "\n")
    try:
        import lrp_rnn
    except ImportError:
        print(f"{out}: lrp_rnn is not installed, model/ not written")
        return
    saved = lrp_rnn.Model.from_torch(double, vocab=vocab, unk_token=UNK, lowercase=True, labels=LABELS,
                                     trust_forward=True)
    saved.save(os.path.join(out, "model"))
    print(f"{out}: written ({saved!r})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "own-model"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed, cell in enumerate(("lstm", "gru")):
        write(os.path.join(args.out, cell), cell, seed=26 + seed)


if __name__ == "__main__":
    main()
