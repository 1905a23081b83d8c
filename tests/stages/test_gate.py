import pytest

from constitutional.errors import UserError
from constitutional.feedback import Comparison, calibrated, content_free_prior, judge
from constitutional.pipeline import decide_route
from constitutional.pipeline_config import parse_config
from constitutional.stages.gate import GateOptions, gate_verdict, run_gate


def test_calibration_divides_out_the_prior():
    assert calibrated(0.8, 0.8) == pytest.approx(0.5)  # exactly the prior: no information
    assert calibrated(0.5, 0.5) == pytest.approx(0.5)
    assert calibrated(0.9, 0.8) > 0.5 > calibrated(0.7, 0.8)  # above the prior leans A, below leans B
    assert calibrated(0.3, 0.2) == pytest.approx(1 - calibrated(0.7, 0.8))  # symmetric in the letters


def test_calibrated_judging_uses_each_principles_content_free_prior(tiny_engine):
    principles = ["Which is kinder?", "Which is safer?"]
    prior = content_free_prior(tiny_engine, principles)
    assert set(prior) == set(principles) and all(0 < v < 1 for v in prior.values())
    items = [Comparison([{"role": "user", "content": "hi"}], pr, "hello there", "go away") for pr in principles]
    raw, _ = judge(tiny_engine, items)
    cal, _ = judge(tiny_engine, items, prior=prior)
    for r, c, pr in zip(raw, cal, principles):
        assert c == pytest.approx(calibrated(r, prior[pr]), abs=1e-6)


def test_gate_verdict_needs_the_interval_above_chance():
    near = {"accuracy": 0.55, "ci95": [0.45, 0.64], "n": 100}
    passed, reason = gate_verdict(near, 0.5)
    assert not passed and "includes 50%" in reason and "55.0%" in reason
    good = {"accuracy": 0.7, "ci95": [0.6, 0.78], "n": 100}
    assert gate_verdict(good, 0.5)[0] and not gate_verdict(good, 0.75)[0]


def test_gate_on_a_random_model_fails_and_writes_its_figures(tmp_path, tiny_engine):
    out = tmp_path / "gate.json"
    result = run_gate(GateOptions(n=12, debias=True, few_shot=0, out=out), tiny_engine)
    assert result["n"] == 12 and out.exists()
    assert not result["passed"]  # 12 items cannot put a 95% interval above 50% unless nearly all are right
    with pytest.raises(UserError, match="do not combine"):
        run_gate(GateOptions(calibrate=True, cot=True), tiny_engine)


@pytest.mark.parametrize(("fallback", "route"), [("revisions", "revisions"), ("continue", "feedback"), ("stop", None)])
def test_fallback_chooses_the_route(fallback, route):
    config = parse_config({"feedback": {"fallback": fallback}}, "cfg")
    failed = {"passed": False, "reason": "accuracy 51%: the interval includes 50%"}
    if route is None:
        with pytest.raises(UserError, match=r"feedback gate failed.*stops here"):
            decide_route(config, failed)
    else:
        got, why = decide_route(config, failed)
        assert got == route and "51%" in why
    assert decide_route(config, {"passed": True, "reason": "ok"})[0] == "feedback"
