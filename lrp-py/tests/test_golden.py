"""The golden cases (tests/fixtures/golden/cases.json) through the Python API,
at the Rust tests' tolerance: `reference-*` computed by the published numpy
implementation of Arras et al. (2017), the others by an independent
implementation of docs/rules.md, all in float64."""

import numpy as np
import pytest

import lrp_rnn
from conftest import GOLDEN, assert_close, golden_cases

RTOL = 1e-9
CASES = golden_cases()


def test_all_golden_cases_are_here():
    assert len(CASES) == 34
    assert sum(c["name"].startswith("reference-") for c in CASES) == 6


def input_of(case):
    if case.get("input"):
        return np.load(GOLDEN / case["input"])
    return " ".join(case["tokens"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_through_the_python_api(case):
    model = lrp_rnn.Model.load(GOLDEN / case["model"])
    x = input_of(case)
    options = dict(target=case["target"], eps=case["eps"], bias_factor=case["bias_factor"])
    e = model.explain(x, per_dimension=True, **options)
    name = case["name"]
    assert isinstance(e, lrp_rnn.Explanation)
    assert e.scores.dtype == np.float64 and e.token_relevance.dtype == np.float64
    assert_close(f"{name}: scores", e.scores, case["scores"], RTOL)
    assert_close(f"{name}: forward", model.forward(x), case["scores"], RTOL)
    assert e.predicted == int(np.argmax(case["scores"]))
    assert e.target == case["target"] and e.method == "lrp"
    if case.get("attention") is None:
        assert e.attention is None
    else:
        assert_close(f"{name}: attention", e.attention, case["attention"], RTOL)
    assert e.input_relevance.shape == np.asarray(case["input_relevance"]).shape
    assert_close(f"{name}: input relevance", e.input_relevance, case["input_relevance"], RTOL)
    assert_close(f"{name}: token relevance", e.token_relevance, case["token_relevance"], RTOL)
    assert_close(
        f"{name}: initial-state relevance", [e.initial_state_relevance], [case["initial_state_relevance"]], RTOL
    )
    assert e.unexplained_relevance == 0.0
    if case.get("input"):
        assert e.tokens is None and e.unknown is None
    else:
        assert e.tokens == case["tokens"] and e.unknown == []
    sa, gi = model.explain([x, x], method="sa", **options), model.explain([x], method="gi", **options)
    assert len(sa) == 2 and len(gi) == 1
    assert_close(f"{name}: sa", sa[0].token_relevance, case["sa"], RTOL)
    assert_close(f"{name}: sa (second copy)", sa[1].token_relevance, case["sa"], RTOL)
    assert_close(f"{name}: gi", gi[0].token_relevance, case["gi"], RTOL)
    assert sa[0].initial_state_relevance is None and sa[0].method == "sa"


def test_golden_cases_explained_as_one_batch_keep_input_order():
    """Every case of a model explained inside one batch of all that model's
    inputs (sorted by length inside, results in input order)."""
    for model_name in sorted({c["model"] for c in CASES}):
        cases = [c for c in CASES if c["model"] == model_name]
        model = lrp_rnn.Model.load(GOLDEN / model_name)
        inputs = [input_of(c) for c in reversed(cases)]
        for k, case in enumerate(reversed(cases)):
            options = dict(target=case["target"], eps=case["eps"], bias_factor=case["bias_factor"])
            e = model.explain(inputs, **options)[k]
            assert_close(f"{case['name']} in a batch", e.token_relevance, case["token_relevance"], RTOL)
            assert_close(f"{case['name']} in a batch", e.scores, case["scores"], RTOL)
        scores = model.forward(inputs)
        for case, s in zip(reversed(cases), scores):
            assert_close(f"{case['name']}: forward in a batch", s, case["scores"], RTOL)
