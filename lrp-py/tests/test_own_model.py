"""A PyTorch text classifier as people write it (tools/own_model.py:
attributes `emb`, `lstm`/`gru`, `fc`; 2 layers, bidirectional,
`batch_first=True`, head on `torch.cat((h_n[-2], h_n[-1]), dim=1)`),
explained from Python and from the CLI (issue 26).

Without torch (as in CI): the committed fixtures tests/fixtures/own-model
(the weights as numpy arrays, the model directory `Model.save` wrote from
the torch module, and the scores torch computed). With torch: the module
itself through `from_torch`, and modules whose parts lrp does not model."""

import json

import numpy as np
import pytest

import lrp_rnn
from conftest import FIXTURES, assert_close, import_tool, lrp_json_lines

OWN = FIXTURES / "own-model"
CELLS = ("lstm", "gru")


def vocab_of(cell):
    return (OWN / cell / "vocab.txt").read_text(encoding="utf8").splitlines()


def expected(cell):
    """The texts and the scores torch computed for them (float32 and float64)."""
    return [json.loads(line) for line in (OWN / cell / "expected.jsonl").read_text().splitlines()]


def assert_explains_like_torch(model, cell, precision):
    """Scores equal torch's (1e-10 in f64, 1e-6 in f32) and, with eps 0 and
    bias factor 1, the relevance of the tokens and initial states adds up to
    the explained score."""
    tolerance = {"f64": 1e-10, "f32": 1e-6}[precision]
    rows = expected(cell)
    for row, e in zip(rows, model.explain([r["text"] for r in rows], eps=0.0, bias_factor=1.0)):
        assert_close(f"{cell} {row['text']!r}: scores", e.scores, row[f"scores_{precision}"], tolerance)
        assert e.tokens == row["text"].split()
        total = float(e.token_relevance.sum()) + e.initial_state_relevance
        assert abs(total - e.scores[e.target]) <= tolerance * 10 * max(1.0, abs(e.scores[e.target])), (row, total)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_the_saved_directory_explains_like_torch(cell, precision):
    model = lrp_rnn.Model.load(OWN / cell / "model", precision=precision)
    assert model.config["encoder"] == {"cell": cell, "input_size": 8, "hidden_size": 6, "num_layers": 2,
                                       "bidirectional": True}
    assert model.config["head"]["input"] == "last" and model.labels == ["negative", "positive"]
    assert_explains_like_torch(model, cell, precision)


@pytest.mark.parametrize("cell", CELLS)
def test_a_bare_state_dict_under_its_own_names_is_recognised(cell):
    """`emb.weight`, `lstm.weight_ih_l0` ..., `fc.weight`: the parts by their
    names and shapes, as the saved directory has them."""
    with np.load(OWN / cell / "weights.npz") as npz:
        state = dict(npz)
    assert "emb.weight" in state and f"{cell}.weight_ih_l1_reverse" in state and "fc.bias" in state
    model = lrp_rnn.Model.from_torch(state, vocab=vocab_of(cell), unk_token="<unk>", lowercase=True)
    saved = lrp_rnn.Model.load(OWN / cell / "model")
    for part in ("encoder", "attention", "head", "embedding", "vocab_size", "unk_token", "lowercase"):
        assert model.config[part] == saved.config[part], part
    texts = [r["text"] for r in expected(cell)]
    for got, want in zip(model.explain(texts), saved.explain(texts)):
        assert got.to_dict() == want.to_dict()


def test_save_writes_a_directory_the_cli_and_load_read(tmp_path):
    with np.load(OWN / "lstm" / "weights.npz") as npz:
        state = dict(npz)
    model = lrp_rnn.Model.from_torch(state, vocab=vocab_of("lstm"), unk_token="<unk>", lowercase=True,
                                     labels=["negative", "positive"])
    out = tmp_path / "my-model"
    files = model.save(out)
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == ["config.json", "model.safetensors", "vocab.txt"]
    header = (out / "model.safetensors").read_bytes()
    assert b'"F32"' in header[:4096] and b'"F64"' not in header[:4096], "float32 arrays are written as float32"
    texts = [r["text"] for r in expected("lstm")]
    ours = model.explain(texts)
    loaded = lrp_rnn.Model.load(out)
    assert loaded.config == model.config
    for text, e in zip(texts, ours):
        assert loaded.explain(text).to_dict() == e.to_dict()
        (cli,) = lrp_json_lines("explain", "--model", out, "--text", text, "--format", "json")
        assert cli == e.to_dict(), text
    assert_explains_like_torch(loaded, "lstm", "f32")  # float32 weights: torch's float32 scores
    # Saving again replaces the files.
    model.save(out)
    assert lrp_rnn.Model.load(out).explain(texts[0]).to_dict() == ours[0].to_dict()


def test_save_refuses_a_loaded_model_and_a_file_in_the_way(tmp_path):
    loaded = lrp_rnn.Model.load(OWN / "gru" / "model")
    with pytest.raises(ValueError, match="save\\(\\) writes a model made by from_torch"):
        loaded.save(tmp_path / "copy")
    with np.load(OWN / "gru" / "weights.npz") as npz:
        model = lrp_rnn.Model.from_torch(dict(npz))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="it is a regular file; only a directory"):
        model.save(blocker)
    assert blocker.read_text() == "not a directory"


def test_an_incomplete_state_dict_names_what_was_found():
    with np.load(OWN / "lstm" / "weights.npz") as npz:
        state = dict(npz)
    two_heads = dict(state, **{"out.weight": state["fc.weight"], "out.bias": state["fc.bias"]})
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch(two_heads)
    message = str(caught.value)
    assert "\n" not in message and "2 candidate heads (fc, out)" in message, message
    assert "lstm.*_l*: the encoder" in message and "emb.weight [26, 8]: the embedding" in message, message
    without_layer = {k: v for k, v in state.items() if not k.startswith("lstm.") or "_l1" not in k}
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch(without_layer, num_layers=2)
    message = str(caught.value)
    assert "encoder.weight_ih_l1" in message and "found lstm.*_l*: the encoder" in message, message


# --- with real PyTorch -----------------------------------------------------


@pytest.fixture(scope="module")
def torch_own():
    torch = pytest.importorskip("torch")
    return torch, import_tool("own_model")


def trained(torch, own_model, cell):
    vocab = vocab_of(cell)
    module = own_model.OwnClassifier(len(vocab), cell=cell)
    module.load_state_dict(torch.load(OWN / cell / "state_dict.pt"))
    return module.eval(), vocab


@pytest.mark.parametrize("cell", CELLS)
def test_the_torch_module_is_explained_from_python_and_the_cli(torch_own, cell, tmp_path):
    torch, own_model = torch_own
    module, vocab = trained(torch, own_model, cell)
    with pytest.raises(TypeError) as caught:
        lrp_rnn.Model.from_torch(module, vocab=vocab)
    message = str(caught.value)
    assert "trust_forward=True" in message and "\n" not in message, message
    assert (f"emb: nn.Embedding(26, 8) -> the embedding; {cell}: nn.{cell.upper()}(8, 6, num_layers=2, "
            f"bidirectional, batch_first) -> the encoder; fc: nn.Linear(12, 2) -> the head") in message, message
    options = {"vocab": vocab, "unk_token": "<unk>", "lowercase": True, "trust_forward": True}
    f32 = lrp_rnn.Model.from_torch(module, precision="f32", **options)
    assert_explains_like_torch(f32, cell, "f32")
    f64 = lrp_rnn.Model.from_torch(module.double(), **options)
    assert_explains_like_torch(f64, cell, "f64")
    # torch's own scores now, against the recorded ones, and lrp's.
    for row in expected(cell):
        with torch.no_grad():
            now = module(torch.tensor([row["ids"]]))[0].numpy()
        assert_close("torch now", now, row["scores_f64"], 1e-12)
    f64.save(tmp_path / "model")
    for row in expected(cell):
        (cli,) = lrp_json_lines("explain", "--model", tmp_path / "model", "--text", row["text"], "--format", "json")
        assert cli == f64.explain(row["text"]).to_dict()


def variant(torch, own_model, reads):
    """OwnClassifier (LSTM) with its head on `reads`: "out[:, -1]", "mean" or "max"."""

    class Variant(own_model.OwnClassifier):
        def forward(self, ids):
            out, _ = self.lstm(self.emb(ids))
            if reads == "mean":
                return self.fc(out.mean(dim=1))
            if reads == "max":
                return self.fc(out.max(dim=1).values)
            return self.fc(out[:, -1])

    torch.manual_seed(5)
    return Variant(len(vocab_of("lstm"))).double().eval()


def test_trust_forward_finds_a_mean_or_max_head_and_names_out_last(torch_own):
    torch, own_model = torch_own
    vocab = vocab_of("lstm")
    for reads in ("mean", "max"):
        module = variant(torch, own_model, reads)
        model = lrp_rnn.Model.from_torch(module, vocab=vocab, trust_forward=True)
        assert model.config["head"]["input"] == reads
        with torch.no_grad():
            want = module(torch.tensor([[3, 1, 4, 1]]))[0].numpy()
        assert_close(reads, model.forward(" ".join(vocab[k] for k in (3, 1, 4, 1))), want, 1e-10)
    module = variant(torch, own_model, "out[:, -1]")
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch(module, vocab=vocab, trust_forward=True)
    message = str(caught.value)
    assert "\n" not in message and "not on out[:, -1], whose backward half has read one position" in message
    assert "torch.cat((h_n[-2], h_n[-1]), 1)" in message and "fc: nn.Linear(12, 2) -> the head" in message


def test_attention_and_parts_lrp_does_not_model_under_any_names(torch_own):
    torch, _ = torch_own
    nn = torch.nn

    class Scorer(nn.Module):  # additive attention, its own names, biases everywhere
        def __init__(self, d, a):
            super().__init__()
            self.w_h = nn.Linear(d, a)
            self.w_query = nn.Linear(d, a)
            self.v = nn.Linear(a, 1)

        def forward(self, out, last):  # out [B, T, D], last [B, D]
            return self.v(torch.tanh(self.w_h(out) + self.w_query(last)[:, None])).squeeze(-1)

    class Tagger(nn.Module):
        def __init__(self, extra=None):
            super().__init__()
            self.rnn = nn.GRU(5, 4, batch_first=True)
            self.attn = Scorer(4, 3)
            self.out = nn.Linear(8, 3)
            if extra is not None:
                self.norm = extra

        def forward(self, x):  # [B, T, 5]
            out, h_n = self.rnn(x)
            last = h_n[-1]
            weights = torch.softmax(self.attn(out, last), dim=1)
            context = (weights[..., None] * out).sum(dim=1)
            return self.out(torch.cat((context, last), dim=1))

    torch.manual_seed(11)
    module = Tagger().double().eval()
    model = lrp_rnn.Model.from_torch(module, trust_forward=True)
    assert model.config["attention"] == {"kind": "additive", "size": 3}
    assert model.config["head"]["input"] == "context+last"
    x = torch.randn(7, 5, dtype=torch.float64)
    with torch.no_grad():
        want = module(x[None])[0].numpy()
    assert_close("additive attention, own names", model.forward(x.numpy()), want, 1e-10)
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch(Tagger(nn.LayerNorm(4)).double(), trust_forward=True)
    message = str(caught.value)
    assert "parameters lrp does not model: norm.weight, norm.bias" in message, message
    assert "attn: Scorer with key w_h, query w_query, score v -> additive attention" in message, message


def test_pytorch_models_export_takes_the_same_module(torch_own, tmp_path):
    """tools/pytorch_models.py's export writes any module from_torch reads
    (through from_torch and save) the same directory as save."""
    torch, own_model = torch_own
    export = import_tool("pytorch_models").export
    module, vocab = trained(torch, own_model, "gru")
    export(module.double(), tmp_path / "exported", vocab=vocab, unk_token="<unk>", lowercase=True,
           labels=["negative", "positive"])
    saved = OWN / "gru" / "model"
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (tmp_path / "exported" / name).read_bytes() == (saved / name).read_bytes(), name
    with pytest.raises(ValueError, match="unk_token '<UNK>' is not in vocab"):
        export(module, tmp_path / "bad", vocab=vocab, unk_token="<UNK>")


def test_time_first_without_biases_and_a_sequential_head(torch_own):
    """An nn.LSTM with batch_first=False and bias=False (zero biases), and a
    head inside nn.Sequential with Dropout: probed as [T, 1]."""
    torch, _ = torch_own
    nn = torch.nn

    class TimeFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder_rnn = nn.LSTM(5, 4, num_layers=2, bias=False, bidirectional=True)
            self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(8, 3))

        def forward(self, x):  # [T, B, 5]
            _, (h_n, _) = self.encoder_rnn(x)
            return self.classifier(torch.cat((h_n[-2], h_n[-1]), dim=1))

    torch.manual_seed(0)
    module = TimeFirst().double().eval()
    model = lrp_rnn.Model.from_torch(module, trust_forward=True)
    assert model.config["encoder"]["num_layers"] == 2 and model.config["head"]["input"] == "last"
    x = torch.randn(6, 5, dtype=torch.float64)
    with torch.no_grad():
        want = module(x[:, None])[0].numpy()
    assert_close("time first", model.forward(x.numpy()), want, 1e-10)
