"""Bad input raises ValueError (OSError for a file that cannot be read)
with the one-line message `lrp` prints for the same input."""

import numpy as np
import pytest

import lrp_rnn
from conftest import GOLDEN, lrp_error

VECTORS_MODEL = GOLDEN / "models" / "lstm-last"
INPUT = GOLDEN / "inputs" / "lstm-last-0.npy"


def raises(kind, call):
    with pytest.raises(kind) as caught:
        call()
    assert type(caught.value) is kind, type(caught.value)
    message = str(caught.value)
    assert "\n" not in message and message
    return message


def test_a_missing_model_directory_is_an_os_error_with_the_cli_message(tmp_path):
    missing = tmp_path / "no-such-model"
    message = raises(OSError, lambda: lrp_rnn.Model.load(missing))
    assert message == lrp_error("explain", "--model", missing, "--vectors", INPUT)
    assert "cannot read" in message and "config.json" in message


def test_an_invalid_model_is_a_value_error_with_the_cli_message(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "lrp-model", "version": 2}')
    message = raises(ValueError, lambda: lrp_rnn.Model.load(tmp_path))
    assert message == lrp_error("explain", "--model", tmp_path, "--vectors", INPUT)


def test_text_for_a_model_without_vocabulary():
    model = lrp_rnn.Model.load(VECTORS_MODEL)
    message = raises(ValueError, lambda: model.explain("some words"))
    assert message == lrp_error("explain", "--model", VECTORS_MODEL, "--text", "some words")


def test_vectors_of_the_wrong_width_and_non_finite_values(tmp_path):
    model = lrp_rnn.Model.load(VECTORS_MODEL)
    x = np.load(INPUT)
    for name, bad in [("wide", np.ones((3, x.shape[1] + 1))), ("nan", np.where(np.arange(x.size).reshape(x.shape) == 4, np.nan, x))]:
        path = tmp_path / f"{name}.npy"
        np.save(path, bad)
        message = raises(ValueError, lambda: model.explain(bad))
        assert message == lrp_error("explain", "--model", VECTORS_MODEL, "--vectors", path), name
        # The first failure in input order stops the batch.
        assert raises(ValueError, lambda: model.explain([x, bad, x])) == message
        assert raises(ValueError, lambda: model.forward([x, bad])) == message


def test_a_target_outside_the_classes():
    model = lrp_rnn.Model.load(VECTORS_MODEL)
    x = np.load(INPUT)
    message = raises(ValueError, lambda: model.explain(x, target=7))
    assert message == lrp_error("explain", "--model", VECTORS_MODEL, "--vectors", INPUT, "--target", "7")
    negative = raises(ValueError, lambda: model.explain(x, target=-1))
    assert negative == "the target must be a class index >= 0"
    assert negative in lrp_error("explain", "--model", VECTORS_MODEL, "--vectors", INPUT, "--target", "-1")
    assert raises(ValueError, lambda: model.explain(x, target=1.5)) == "target must be a whole number, not 1.5"


@pytest.mark.parametrize(
    "options,flags",
    [
        ({"composite": "no-such-preset"}, ["--composite", "no-such-preset"]),
        ({"gate_rule": "most"}, ["--gate-rule", "most"]),
        ({"eps": -1.0}, ["--eps", "-1"]),
        ({"method": "ig", "steps": 0}, ["--method", "ig", "--steps", "0"]),
        ({"eps": float("nan")}, ["--eps", "NaN"]),
    ],
)
def test_bad_rules_and_methods_give_the_cli_message(options, flags):
    model = lrp_rnn.Model.load(VECTORS_MODEL)
    message = raises(ValueError, lambda: model.explain(np.load(INPUT), **options))
    assert message == lrp_error("explain", "--model", VECTORS_MODEL, "--vectors", INPUT, *flags)


def test_unknown_words_without_an_unknown_token(tmp_path):
    model_dir = GOLDEN / "models" / "emb-bilstm-context"
    message = raises(ValueError, lambda: lrp_rnn.Model.load(model_dir).explain(["w1 w2", "w1 notaword"]))
    assert "notaword" in message
    assert message.replace("input 1", "TEXT") == lrp_error("explain", "--model", model_dir, "--text", "w1 notaword")


def test_arguments_without_a_cli_flag_behind_them():
    model = lrp_rnn.Model.load(VECTORS_MODEL)
    assert raises(ValueError, lambda: model.explain(np.load(INPUT), method="shap")) == (
        "invalid value 'shap' for method [possible values: lrp, sa, gi, occlusion, ig]"
    )
    assert raises(ValueError, lambda: model.explain(np.zeros((2, 3, 4)))) == (
        "input 0: an array [T, E] has 2 dimensions, not 3"
    )
    assert raises(TypeError, lambda: model.explain([np.load(INPUT), object()])).startswith(
        "input 1: an array of object is not accepted"
    )
    assert raises(ValueError, lambda: model.explain([np.load(INPUT), [[1.0, 2.0], [3.0]]])).startswith(
        "input 1: not an array of numbers"
    )
    assert raises(ValueError, lambda: lrp_rnn.Model.default(precision="f16")) == (
        "invalid value 'f16' for precision [possible values: f64, f32]"
    )
    assert model.explain([]) == [] and model.forward([]) == []
