"""Model.from_torch: from a dict of arrays (always run, on the parity
fixtures, whose scores PyTorch computed) and from real PyTorch modules built
like tools/pytorch_models.py's RecurrentClassifier (run when torch is
importable, skipped otherwise)."""

import json

import numpy as np
import pytest

import lrp_rnn
from conftest import FIXTURES, assert_close, import_tool

PARITY = FIXTURES / "parity"
PARITY_CASES = json.loads((PARITY / "cases.json").read_text())["cases"]
PARITY_MODELS = sorted({c["model"] for c in PARITY_CASES})


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (8-byte header
    length, JSON header, then the data)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = {"F64": "<f8", "F32": "<f4"}[info["dtype"]]
        tensors[name] = np.frombuffer(data[8 + n + start : 8 + n + end], dtype=dtype).reshape(info["shape"])
    return tensors


# What the tensors cannot say: `dot` attention has none, a model whose
# head reads the final state beside an attention it does not use, the
# pooling of a mean, max or per-step head (the head's width is the same as
# for the final state), and a regression task.
NOT_IN_THE_TENSORS = {
    "lstm-uni-dot-context": {"attention": "dot"},
    "gru-bi-2l-dot-contextlast": {"attention": "dot"},
    "emb-gru-uni-context-last": {"head_input": "last"},
    "emb-gru-bi-mean": {"head_input": "mean"},
    "lstm-bi-2l-mean": {"head_input": "mean"},
    "gru-uni-max": {"head_input": "max"},
    "lstm-uni-each": {"head_input": "each"},
    "lstm-bi-max-regression": {"head_input": "max", "task": "regression"},
    "gru-bi-each-regression": {"head_input": "each", "task": "regression"},
}


def parity_input(case):
    if case.get("input"):
        return np.load(PARITY / case["input"])
    return " ".join(case["tokens"])


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_a_dict_of_arrays_makes_the_model_its_directory_makes(name):
    directory = PARITY / name
    config = json.loads((directory / "config.json").read_text())
    vocab = None
    if config.get("vocab"):
        vocab = (directory / config["vocab"]).read_text(encoding="utf8").splitlines()
    extra = NOT_IN_THE_TENSORS.get(name.removesuffix("-f32"), {})
    tensors = read_safetensors(directory / "model.safetensors")
    model = lrp_rnn.Model.from_torch(tensors, vocab=vocab, unk_token=config.get("unk_token"), **extra)
    loaded = lrp_rnn.Model.load(directory)
    for part in ("encoder", "attention", "head", "embedding", "vocab_size"):
        assert model.config[part] == loaded.config[part], (name, part)
    cases = [c for c in PARITY_CASES if c["model"] == name]
    assert cases
    inputs = [parity_input(c) for c in cases]
    for got, want in zip(model.explain(inputs, per_dimension=True), loaded.explain(inputs, per_dimension=True)):
        assert got.to_dict() == want.to_dict()
    if name.endswith("-f32"):
        return
    # The parity fixtures' scores and attention are PyTorch's own.
    for case, e in zip(cases, model.explain(inputs)):
        assert_close(f"{case['name']}: scores", e.scores, case["scores"], 1e-10)
        if case.get("attention") is not None and e.attention is not None:
            assert_close(f"{case['name']}: attention", e.attention, case["attention"], 1e-10)


def test_tensors_of_any_float_type_and_objects_with_numpy():
    """Tensors are read through .detach().cpu().numpy() when an object has
    them (torch's, here a stand-in), else as arrays; float32 widens."""

    class Tensor:
        def __init__(self, array):
            self.array = array

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.array

    directory = PARITY / "lstm-last-bi-2l"
    tensors = read_safetensors(directory / "model.safetensors")
    x = np.load(PARITY / "inputs" / "lstm-last-bi-2l-T7.npy")
    want = lrp_rnn.Model.load(directory).explain(x).to_dict()
    assert lrp_rnn.Model.from_torch({k: Tensor(v) for k, v in tensors.items()}).explain(x).to_dict() == want
    as_lists = {k: v.tolist() for k, v in tensors.items()}
    assert lrp_rnn.Model.from_torch(as_lists).explain(x).to_dict() == want


def test_architecture_keywords_override_and_are_checked():
    directory = PARITY / "lstm-last-uni"
    tensors = read_safetensors(directory / "model.safetensors")
    with pytest.raises(ValueError, match="unknown architecture keyword 'layers'"):
        lrp_rnn.Model.from_torch(tensors, layers=2)
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch(tensors, num_layers=2)
    assert "encoder.weight_ih_l1" in str(caught.value), str(caught.value)
    with pytest.raises(ValueError) as caught:
        lrp_rnn.Model.from_torch({k: v for k, v in tensors.items() if k != "head.bias"}, head_bias=True)
    assert "head.bias" in str(caught.value)
    with pytest.raises(ValueError, match="give cell="):
        lrp_rnn.Model.from_torch({"head.weight": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="state_dict"):
        lrp_rnn.Model.from_torch(42)
    bad = dict(tensors)
    bad["head.weight"] = np.full(tensors["head.weight"].shape, np.inf)
    with pytest.raises(ValueError, match="head.weight"):
        lrp_rnn.Model.from_torch(bad)


# --- with real PyTorch -----------------------------------------------------

E, H, A, C, V = 5, 4, 3, 3, 12

ARCHITECTURES = {
    "lstm": {"encoder": {"cell": "lstm", "input_size": E, "hidden_size": H}, "head": {"input": "last", "num_classes": C}},
    "gru": {"encoder": {"cell": "gru", "input_size": E, "hidden_size": H}, "head": {"input": "last", "num_classes": C}},
    "lstm-bidirectional": {
        "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H, "bidirectional": True},
        "head": {"input": "last", "num_classes": C, "bias": False},
    },
    "gru-bidirectional-stacked-3": {
        "encoder": {"cell": "gru", "input_size": E, "hidden_size": H, "num_layers": 3, "bidirectional": True},
        "head": {"input": "last", "num_classes": C},
    },
    "lstm-stacked-2": {
        "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H, "num_layers": 2},
        "head": {"input": "last", "num_classes": C},
    },
    "attention-context": {
        "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H, "bidirectional": True},
        "attention": {"kind": "context", "size": A},
        "head": {"input": "context", "num_classes": C},
    },
    "attention-additive": {
        "encoder": {"cell": "gru", "input_size": E, "hidden_size": H, "bidirectional": True},
        "attention": {"kind": "additive", "size": A},
        "head": {"input": "context+last", "num_classes": C},
    },
    "attention-dot": {
        "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H, "num_layers": 2},
        "attention": {"kind": "dot"},
        "head": {"input": "context", "num_classes": C},
    },
    "attention-general": {
        "encoder": {"cell": "gru", "input_size": E, "hidden_size": H, "num_layers": 2, "bidirectional": True},
        "attention": {"kind": "general"},
        "head": {"input": "context+last", "num_classes": C},
    },
    "embedding-text": {
        "embedding": True,
        "vocab_size": V,
        "encoder": {"cell": "lstm", "input_size": E, "hidden_size": H, "bidirectional": True},
        "attention": {"kind": "context", "size": A},
        "head": {"input": "context", "num_classes": C},
    },
}


@pytest.fixture(scope="module")
def torch_models():
    torch = pytest.importorskip("torch")
    return torch, import_tool("pytorch_models").RecurrentClassifier


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_from_torch_matches_torch_forward(torch_models, name):
    torch, RecurrentClassifier = torch_models
    torch.manual_seed(sorted(ARCHITECTURES).index(name))
    config = ARCHITECTURES[name]
    module = RecurrentClassifier(config).double().eval()
    vocab = [f"w{k}" for k in range(V)] if config.get("embedding") else None
    model = lrp_rnn.Model.from_torch(module, vocab=vocab)
    worst = 0.0
    for T in (1, 2, 9, 31):
        if vocab:
            ids = torch.randint(0, V, (T,))
            x, ours = ids, " ".join(vocab[i] for i in ids.tolist())
        else:
            x = torch.randn(T, E, dtype=torch.float64)
            ours = x.numpy()
        with torch.no_grad():
            scores, weights = module(x)
        e = model.explain(ours, bias_factor=1.0, eps=0.0)
        assert_close(f"{name} T={T}: scores", e.scores, scores.numpy(), 1e-10)
        worst = max(worst, float(np.abs(e.scores - scores.numpy()).max()))
        if weights is None:
            assert e.attention is None
        else:
            assert_close(f"{name} T={T}: attention", e.attention, weights.numpy(), 1e-10)
            worst = max(worst, float(np.abs(e.attention - weights.numpy()).max()))
        # With bias factor 1 and eps 0 the relevance is conserved.
        total = e.token_relevance.sum() + e.initial_state_relevance
        assert abs(total - e.scores[e.target]) <= 1e-9 * max(1.0, abs(e.scores[e.target])), name
    print(f"\ntorch parity {name}: max abs difference {worst:.3e}")


def test_a_subclass_is_refused_unless_its_forward_matches(torch_models):
    """A subclass may compute something else with the same weights (here a
    scaled head: the scores differ by about 0.4): refused, unless
    trust_forward=True finds its forward gives the model's scores."""
    torch, RecurrentClassifier = torch_models

    class Scaled(RecurrentClassifier):
        def forward(self, x):
            scores, weights = super().forward(x)
            return scores * 1.5 + 0.4, weights

    class Renamed(RecurrentClassifier):
        pass

    torch.manual_seed(7)
    config = ARCHITECTURES["attention-context"]
    for kind in (Scaled, Renamed):
        module = kind(config).double().eval()
        with pytest.raises(TypeError, match=f"not of .*{kind.__qualname__}.*trust_forward=True"):
            lrp_rnn.Model.from_torch(module)
    module = Scaled(config).double().train()
    with pytest.raises(ValueError, match=r"their scores differ by up to 0\.\d+ \(allowed 1e-09 for float64 weights\)"):
        lrp_rnn.Model.from_torch(module, trust_forward=True)
    assert module.training, "trust_forward restores the module's mode"
    renamed = Renamed(config).double().eval()
    model = lrp_rnn.Model.from_torch(renamed, trust_forward=True)
    x = torch.randn(6, E, dtype=torch.float64)
    with torch.no_grad():
        want = renamed(x)[0].numpy()
    assert_close("trusted forward", model.forward(x.numpy()), want, 1e-10)
    # A float32 module is compared at float32's tolerance.
    lrp_rnn.Model.from_torch(Renamed(config).float().eval(), trust_forward=True)
    # Replacing forward on an instance of the known class is as a subclass.
    plain = RecurrentClassifier(config).double().eval()
    plain.forward = lambda x: (torch.zeros(C, dtype=torch.float64), None)
    with pytest.raises(TypeError, match="trust_forward=True"):
        lrp_rnn.Model.from_torch(plain)


def test_a_text_model_with_trust_forward_is_probed_with_token_ids(torch_models):
    torch, RecurrentClassifier = torch_models

    class Renamed(RecurrentClassifier):
        pass

    torch.manual_seed(3)
    module = Renamed(ARCHITECTURES["embedding-text"]).double().eval()
    vocab = [f"w{k}" for k in range(V)]
    model = lrp_rnn.Model.from_torch(module, vocab=vocab, trust_forward=True)
    with torch.no_grad():
        want = module(torch.tensor([3, 1, 4]))[0].numpy()
    assert_close("text", model.forward("w3 w1 w4"), want, 1e-10)
