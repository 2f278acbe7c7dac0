"""lrp_rnn.ray.explain_dataset on a local Ray (2 CPUs) over the SST test
sentences: every row equals what `lrp explain --input` prints for the same
text. Ray is the optional extra `lrp-rnn[ray]`; CI installs it (and sets
CI, which turns a missing Ray into a failure instead of a skip)."""

import os

import numpy as np
import pytest

from conftest import GOLDEN, assert_close, lrp_json_lines, sst_sentences

if os.environ.get("CI"):
    import ray
else:
    ray = pytest.importorskip("ray")

import lrp_rnn  # noqa: E402
from lrp_rnn.ray import OUTPUT_COLUMNS, explain_dataset  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_the_sst_test_set_on_ray_equals_the_cli(local_ray, tmp_path):
    texts = sst_sentences("test")
    assert len(texts) == 2210
    path = tmp_path / "test.txt"
    path.write_text("".join(t + "\n" for t in texts), encoding="utf8")
    want = lrp_json_lines("explain", "--input", path)
    assert len(want) == len(texts)

    ds = ray.data.from_items([{"id": k, "text": t} for k, t in enumerate(texts)])
    rows = explain_dataset(ds, "default", batch_size=256, concurrency=2).take_all()
    assert len(rows) == len(texts)
    rows.sort(key=lambda r: r["id"])
    for k, (row, w) in enumerate(zip(rows, want)):
        assert row["id"] == k and row["text"] == texts[k]
        assert set(OUTPUT_COLUMNS) <= set(row)
        assert row["predicted"] == w["predicted"], k
        assert list(row["tokens"]) == w["tokens"], k
        assert_close(f"row {k}: scores", row["scores"], w["scores"], 1e-12)
        assert_close(f"row {k}: token relevance", row["token_relevance"], w["token_relevance"], 1e-12)


def test_vectors_and_options_on_ray(local_ray, tmp_path):
    model_dir = GOLDEN / "models" / "gru-context"
    paths = sorted((GOLDEN / "inputs").glob("gru-context-*.npy"))
    ds = ray.data.from_items([{"name": p.name, "x": np.load(p)} for p in paths])
    rows = explain_dataset(ds, model_dir, vectors_column="x", batch_size=2, concurrency=1, method="gi", target=1).take_all()
    assert sorted(r["name"] for r in rows) == [p.name for p in paths]
    for row in rows:
        (want,) = lrp_json_lines("explain", "--model", model_dir, "--vectors", GOLDEN / "inputs" / row["name"],
                                 "--method", "gi", "--target", "1")
        assert_close(row["name"], row["token_relevance"], want["token_relevance"], 1e-12)
        assert row["predicted"] == want["predicted"] and row["tokens"] is None


def test_a_bad_row_fails_the_dataset_with_the_model_message(local_ray):
    model_dir = GOLDEN / "models" / "gru-context"
    ds = ray.data.from_items([{"text": "words for a model without a vocabulary"}])
    with pytest.raises(Exception) as caught:
        explain_dataset(ds, model_dir, concurrency=1).take_all()
    assert "no vocab file" in str(caught.value)
    with pytest.raises(ValueError):
        lrp_rnn.Model.load(model_dir).explain("words")
