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


def test_a_bad_row_is_one_value_error_naming_the_row(local_ray):
    model_dir = GOLDEN / "models" / "emb-bilstm-context"
    rows = [{"id": k, "text": t} for k, t in enumerate(["w1 w2", "w2 w1 w2", "w1 notaword", "w2"])]
    ds = ray.data.from_items(rows)
    explained = explain_dataset(ds, model_dir, batch_size=4, concurrency=1)
    assert isinstance(explained, ray.data.Dataset)
    assert not ds.context.raise_original_map_exception, "the input's settings are left alone"
    with pytest.raises(Exception) as caught:
        explained.take_all()
    assert type(caught.value) is ValueError, type(caught.value)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message, message
    assert message.startswith("row (id=2, text='w1 notaword'): "), message
    with pytest.raises(ValueError) as direct:
        lrp_rnn.Model.load(model_dir).explain("w1 notaword")
    assert message.endswith(str(direct.value).removeprefix("input 0: ")), (message, str(direct.value))


def test_a_missing_text_is_named_as_missing(local_ray):
    rows = [{"id": 0, "text": "a witty film"}, {"id": 1, "text": None}]
    explained = explain_dataset(ray.data.from_items(rows), "default", concurrency=1)
    with pytest.raises(Exception) as caught:
        # A dataset derived from the result, consumed by iteration.
        list(explained.limit(10).iter_rows())
    assert type(caught.value) is ValueError, type(caught.value)
    assert str(caught.value) == "row (id=1): missing text: the column 'text' holds no value (None)", str(caught.value)


def test_errors_column_explains_the_other_rows(local_ray):
    model_dir = GOLDEN / "models" / "emb-bilstm-context"
    texts = ["w1 w2", None, "w1 notaword", "w2"]
    rows = [{"id": k, "text": t} for k, t in enumerate(texts)]
    out = explain_dataset(ray.data.from_items(rows), model_dir, batch_size=4, concurrency=1, errors="column")
    got = sorted(out.take_all(), key=lambda r: r["id"])
    model = lrp_rnn.Model.load(model_dir)
    for k in (0, 3):
        assert got[k]["error"] is None
        assert_close(f"row {k}", got[k]["token_relevance"], model.explain(texts[k]).token_relevance, 1e-12)
    assert got[1]["error"] == "row (id=1): missing text: the column 'text' holds no value (None)"
    assert got[2]["error"].startswith("row (id=2, text='w1 notaword'): ") and "notaword" in got[2]["error"]
    assert got[1]["predicted"] is None and got[2]["scores"] is None


def test_a_bad_model_or_option_raises_before_ray_runs(local_ray, tmp_path):
    ds = ray.data.from_items([{"text": "a witty film"}])
    with pytest.raises(OSError) as caught:
        explain_dataset(ds, tmp_path / "no-such-model")
    assert type(caught.value) is OSError and "config.json" in str(caught.value)
    with pytest.raises(ValueError, match="invalid value 'shap' for method"):
        explain_dataset(ds, "default", method="shap")
    with pytest.raises(ValueError, match="errors is 'raise' or 'column'"):
        explain_dataset(ds, "default", errors="ignore")
    with pytest.raises(ValueError, match=r"a pair \(min, max\), not \(2,\)"):
        explain_dataset(ds, "default", concurrency=(2,))


def test_parquet_holds_lists_of_numbers_that_pandas_reads_back(local_ray, tmp_path):
    """Scores and relevance are written as Arrow lists of doubles (the
    per-dimension relevance as lists of lists), not as Ray's tensor type,
    which Parquet keeps as a struct {data, shape}: pandas reads them back as
    numbers."""
    import pandas
    import pyarrow.parquet

    model_dir = GOLDEN / "models" / "emb-bilstm-context"
    texts = ["w1 w2", "w2 w1 w2", "w2"]
    ds = ray.data.from_items([{"id": k, "text": t} for k, t in enumerate(texts)])
    explain_dataset(ds, model_dir, concurrency=1, per_dimension=True).write_parquet(str(tmp_path / "out"))
    schema = pyarrow.parquet.read_schema(next((tmp_path / "out").glob("*.parquet")))
    assert str(schema.field("token_relevance").type) == "list<element: double>", schema
    assert str(schema.field("scores").type) == "list<element: double>", schema
    assert str(schema.field("input_relevance").type) == "list<element: list<element: double>>", schema
    frame = pandas.read_parquet(tmp_path / "out").sort_values("id")
    model = lrp_rnn.Model.load(model_dir)
    for (_, row), text in zip(frame.iterrows(), texts):
        want = model.explain(text, per_dimension=True)
        relevance = np.asarray(row["token_relevance"])
        assert relevance.dtype == np.float64 and relevance.shape == (len(text.split()),)
        assert_close(text, relevance, want.token_relevance, 1e-12)
        assert_close(text, np.asarray(row["scores"], dtype=np.float64), want.scores, 1e-12)
        per_dimension = np.stack([np.asarray(r) for r in row["input_relevance"]])
        assert per_dimension.dtype == np.float64 and per_dimension.shape == want.input_relevance.shape
        assert_close(text, per_dimension, want.input_relevance, 1e-12)


QUIET_RUN = """
import sys
import ray.data
import lrp_rnn.ray
lrp_rnn.ray.start(num_cpus=2)
ds = ray.data.from_items([{"text": t} for t in ["a witty film", "dull", "the best film"]])
lrp_rnn.ray.explain_dataset(ds, "default", concurrency=1).write_parquet(sys.argv[1])
rows = lrp_rnn.ray.explain_dataset(ds, "default", concurrency=1).take_all()
print(len(rows))
"""


def test_a_successful_run_prints_nothing_on_stderr(tmp_path):
    """With lrp_rnn.ray.start and the default quiet=True, Ray says nothing on
    a run that succeeds (it printed 17 lines, one at error level, before)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", QUIET_RUN, str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"
    assert done.stderr == "", done.stderr
