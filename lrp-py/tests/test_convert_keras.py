"""tools/convert_keras.py with --unk-token and --lowercase (issue 26): a small
Keras 3 text classifier (Embedding, Bidirectional LSTM, Dense) converted,
then read by lrp_rnn and the CLI with capitals and unknown words, as Keras
scored the same texts. Runs Keras (with the torch backend when torch is
installed) in subprocesses; skipped without keras (CI has none)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import lrp_rnn
from conftest import REPO, assert_close, lrp_error, lrp_json_lines

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)

BUILD = """
import sys
import keras, numpy as np
keras.utils.set_random_seed(4)
model = keras.Sequential([
    keras.Input((None,), dtype="int32"),
    keras.layers.Embedding(7, 5),
    keras.layers.Bidirectional(keras.layers.LSTM(4)),
    keras.layers.Dense(3),
])
model(np.zeros((1, 2), dtype="int32"))
model.save(sys.argv[1])
"""

VOCAB = ["<unk>", "a", "fine", "film", "dull", "story", "the"]
#: Texts with capitals and words outside the vocabulary, as lrp reads them:
#: one space between words, no punctuation.
TEXTS = ["a fine film", "The Dull story", "a Gorgeous unknown film", "film"]


def keras_env():
    env = dict(os.environ)
    if importlib.util.find_spec("torch") is not None:
        env.setdefault("KERAS_BACKEND", "torch")
    return env


def run(*args):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=keras_env(),
                          timeout=600)
    return done


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    where = tmp_path_factory.mktemp("keras")
    done = run("-c", BUILD, where / "model.keras")
    assert done.returncode == 0, done.stderr
    (where / "vocab.txt").write_text("".join(w + "\n" for w in VOCAB), encoding="utf8")
    (where / "texts.txt").write_text("".join(t + "\n" for t in TEXTS), encoding="utf8")
    done = run(REPO / "tools" / "convert_keras.py", where / "model.keras", "--out", where / "out",
               "--vocab", where / "vocab.txt", "--unk-token", "<unk>", "--lowercase", "--texts", where / "texts.txt")
    assert done.returncode == 0, done.stderr
    return where


def test_unk_token_and_lowercase_reach_the_config_and_the_scores(converted):
    out = converted / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["unk_token"] == "<unk>" and config["lowercase"] is True and config["vocab"] == "vocab.txt"
    expected = [json.loads(line)["scores"] for line in (out / "expected.jsonl").read_text().splitlines()]
    assert len(expected) == len(TEXTS)
    model = lrp_rnn.Model.load(out)
    for text, want, e in zip(TEXTS, expected, model.explain(TEXTS)):
        # Keras computed in float32.
        assert_close(text, e.scores, want, 1e-5)
    e = model.explain("a Gorgeous unknown film")
    assert e.unknown == [1, 2] and e.tokens == ["a", "Gorgeous", "unknown", "film"]
    (cli,) = lrp_json_lines("explain", "--model", out, "--text", "The Dull story", "--format", "json")
    assert_close("cli", cli["scores"], expected[1], 1e-5)


def test_a_word_outside_the_vocabulary_without_unk_token_is_named(converted, tmp_path):
    done = run(REPO / "tools" / "convert_keras.py", converted / "model.keras", "--out", tmp_path / "out",
               "--vocab", converted / "vocab.txt", "--texts", converted / "texts.txt")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "convert_keras: --texts: 'The' is not in the vocabulary (give --unk-token)"
    done = run(REPO / "tools" / "convert_keras.py", converted / "model.keras", "--out", tmp_path / "out",
               "--vocab", converted / "vocab.txt", "--unk-token", "<UNK>")
    assert "convert_keras: --unk-token '<UNK>' is not a line of" in done.stderr, done.stderr
    # Without --unk-token, lrp itself names the unknown word.
    done = run(REPO / "tools" / "convert_keras.py", converted / "model.keras", "--out", tmp_path / "plain",
               "--vocab", converted / "vocab.txt")
    assert done.returncode == 0, done.stderr
    assert "Gorgeous" in lrp_error("explain", "--model", tmp_path / "plain", "--text", "a Gorgeous film")
