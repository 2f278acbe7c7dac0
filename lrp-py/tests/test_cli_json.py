"""Explanation.to_dict() is the JSON `lrp explain` prints, key for key and
number for number, for batches of text and of vectors, with every option
the Python API passes on."""

import numpy as np
import pytest

import lrp_rnn
from conftest import GOLDEN, lrp_json_lines, sst_sentences

# A batch of SST test sentences of many lengths, plus words the built-in
# vocabulary lacks and text that needs the treebank tokeniser.
TEXTS = sst_sentences("test")[:150] + [
    "Zyxwv qwertyuiop , the film .",
    "It doesn't work -- \"at all\" (really).",
    "a",
]

OPTIONS = [
    ({}, []),
    ({"target": 2, "per_dimension": True}, ["--target", "2", "--per-dimension"]),
    ({"composite": "zplus", "gate_rule": "abs", "eps": 0.01, "bias_factor": 1.0},
     ["--composite", "zplus", "--gate-rule", "abs", "--eps", "0.01", "--bias-factor", "1"]),
    ({"method": "ig", "steps": 7}, ["--method", "ig", "--steps", "7"]),
    ({"method": "occlusion"}, ["--method", "occlusion"]),
    ({"method": "gi", "per_dimension": True}, ["--method", "gi", "--per-dimension"]),
]


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("".join(t + "\n" for t in TEXTS), encoding="utf8")
    return path


@pytest.mark.parametrize("options,flags", OPTIONS, ids=[" ".join(f) or "defaults" for _, f in OPTIONS])
def test_a_batch_of_text_gives_the_cli_json(texts_file, options, flags):
    want = lrp_json_lines("explain", "--input", texts_file, *flags)
    assert [w.pop("line") for w in want] == list(range(1, len(TEXTS) + 1))
    got = [e.to_dict() for e in lrp_rnn.Model.default().explain(TEXTS, **options)]
    assert len(got) == len(want) == len(TEXTS)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"text {k}: {TEXTS[k]!r}"
    assert any(w["unknown"] for w in want), "the batch has out-of-vocabulary words"


def test_f32_gives_the_cli_json_at_f32_and_float32_arrays(texts_file):
    want = lrp_json_lines("explain", "--input", texts_file, "--precision", "f32")
    model = lrp_rnn.Model.default(precision="f32")
    assert model.precision == "f32"
    got = model.explain(TEXTS)
    assert got[0].scores.dtype == np.float32 and got[0].token_relevance.dtype == np.float32
    for g, w in zip(got, want):
        w.pop("line")
        assert g.to_dict() == w
        assert g.token_relevance.tolist() == w["token_relevance"], "float32 widens exactly"
    f64 = lrp_rnn.Model.default().explain(TEXTS[:5])
    assert any(a.to_dict() != b.to_dict() for a, b in zip(got, f64)), "f32 really computes in f32"


def test_one_text_gives_the_cli_json_of_text():
    text = "neither funny nor suspenseful nor particularly well-drawn ."
    (want,) = lrp_json_lines("explain", "--text", text, "--format", "json")
    got = lrp_rnn.Model.default().explain(text)
    assert got.to_dict() == want
    assert got.tokens == want["tokens"] and got.unknown == want["unknown"] == [6]
    assert got.predicted == want["predicted"] == 1
    np.testing.assert_array_equal(lrp_rnn.Model.default().forward(text), np.array(want["scores"]))


def test_a_batch_of_vectors_gives_the_cli_json(tmp_path):
    model_dir = GOLDEN / "models" / "bilstm-general-2l"
    paths = sorted((GOLDEN / "inputs").glob("bilstm-general-2l-*.npy"))
    assert len(paths) == 4
    # float32 and Fortran-ordered arrays are read as the CLI reads such .npy files.
    arrays = [np.load(p) for p in paths]
    arrays.append(np.asfortranarray(arrays[0]))
    arrays.append(arrays[1].astype(np.float32))
    paths.append(tmp_path / "fortran.npy")
    np.save(paths[-1], arrays[-2])
    paths.append(tmp_path / "f32.npy")
    np.save(paths[-1], arrays[-1])
    model = lrp_rnn.Model.load(model_dir)
    for options, flags in OPTIONS:
        got = model.explain(arrays, **options)
        for path, g in zip(paths, got):
            (want,) = lrp_json_lines("explain", "--model", model_dir, "--vectors", path, *flags)
            assert g.to_dict() == want, (path.name, flags)
            assert g.tokens is None and "tokens" not in g.to_dict()


def test_to_dict_is_a_copy():
    e = lrp_rnn.Model.default().explain("a witty film")
    e.to_dict()["scores"].append(1.0)
    assert len(e.to_dict()["scores"]) == 5
