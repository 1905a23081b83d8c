import pytest

from constitutional.errors import UserError
from constitutional.stages.bench_feedback import SETTINGS, BenchOptions, run_bench_feedback
from constitutional.stats import wilson_interval


def test_every_setting_reports_accuracy_with_an_interval(tmp_path, tiny_engine):
    rows = run_bench_feedback(BenchOptions(limit=6, out=tmp_path, principles=2), tiny_engine)
    assert [r["setting"] for r in rows] == list(SETTINGS)
    for r in rows:
        lo, hi = r["ci95"]
        assert r["n"] == 6 and 0 <= lo <= r["accuracy"] <= hi <= 1
    assert (tmp_path / "feedback_accuracy.png").exists()


def test_unknown_setting_is_refused(tmp_path, tiny_engine):
    with pytest.raises(UserError, match="unknown setting"):
        run_bench_feedback(BenchOptions(settings=["magic"], out=tmp_path), tiny_engine)


def test_wilson_interval_brackets_the_estimate():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0
