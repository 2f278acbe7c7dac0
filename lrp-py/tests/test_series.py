"""Time series from Python: a `[T, C]` array or a pandas DataFrame (one
column a channel, one row a time step) is explained as `lrp explain
--vectors FILE.csv` explains the same rows, and `per_dimension=True` gives
the relevance of every (time, channel) cell, `[T, C]`."""

import pytest

from conftest import FIXTURES, assert_close, lrp_json_lines

import lrp_rnn

SERIES = FIXTURES / "series6"


def test_a_dataframe_per_series_equals_the_cli_on_the_csv():
    pd = pytest.importorskip("pandas")
    table = pd.read_csv(SERIES / "sensors.csv")
    channels = [c for c in table.columns if c not in ("subject", "t")]
    model = lrp_rnn.Model.load(str(SERIES))
    reports = lrp_json_lines(
        "explain", "--model", SERIES, "--vectors", SERIES / "sensors.csv",
        "--series-column", "subject", "--time-column", "t", "--per-dimension", "--format", "json",
    )
    names = list(dict.fromkeys(table["subject"]))
    assert [r["name"] for r in reports] == names and len(names) == 3
    for name, report in zip(names, reports):
        frame = table[table["subject"] == name][channels]
        assert report["channels"] == channels
        for given in (frame, frame.to_numpy()):
            e = model.explain(given, per_dimension=True)
            assert e.input_relevance.shape == (len(frame), len(channels))
            assert_close(f"{name} input relevance", e.input_relevance, report["input_relevance"], 1e-12)
            assert_close(f"{name} scores", e.scores, report["scores"], 1e-12)
