import math
import random

from constitutional.elo import ELO_PER_UNIT, Match, fit_elo, fit_strengths, win_rate


def synthetic(strengths: list[float], n_prompts: int, seed: int = 0) -> list[Match]:
    """Hard outcomes drawn from a Bradley-Terry model with known strengths (natural units)."""
    rng = random.Random(seed)
    out = []
    for prompt in range(n_prompts):
        for i in range(len(strengths)):
            for j in range(i + 1, len(strengths)):
                p = 1 / (1 + math.exp(-(strengths[i] - strengths[j])))
                out.append(Match(i, j, float(rng.random() < p), group=str(prompt)))
    return out


def test_recovers_order_and_scale_of_known_strengths():
    truth = [0.0, 0.8, -0.5, 1.6]
    result = fit_elo(["a", "b", "c", "d"], synthetic(truth, 400), bootstrap=200)
    assert sorted(range(4), key=lambda k: result.elo[k]) == sorted(range(4), key=lambda k: truth[k])
    for k in range(4):
        expected = (truth[k] - truth[0]) * ELO_PER_UNIT
        assert abs(result.elo[k] - expected) < 60, (k, result.elo[k], expected)
        lo, hi = result.ci95[k]
        assert lo <= result.elo[k] <= hi
    assert result.elo[0] == 0.0


def test_soft_outcomes_give_the_logit():
    # A steady 75% soft win is a strength gap of log(3).
    matches = [Match(0, 1, 0.75, group=str(n)) for n in range(50)]
    s = fit_strengths(2, matches, prior=1e-9)
    assert abs((s[0] - s[1]) - math.log(3)) < 1e-5


def test_a_clean_sweep_stays_finite_and_intervals_widen_with_fewer_prompts():
    sweep = [Match(0, 1, 1.0, group=str(n)) for n in range(10)]
    s = fit_strengths(2, sweep)
    assert math.isfinite(s[0]) and s[0] > s[1]
    few = fit_elo(["a", "b"], synthetic([0.0, 0.5], 20), bootstrap=300)
    many = fit_elo(["a", "b"], synthetic([0.0, 0.5], 500), bootstrap=300)
    width = lambda r: r.ci95[1][1] - r.ci95[1][0]  # noqa: E731
    assert width(few) > width(many)


def test_win_rate_orients_by_model():
    matches = [Match(0, 1, 0.9), Match(1, 0, 0.3)]
    assert abs(win_rate(matches, 0, 1) - 0.8) < 1e-9
    assert abs(win_rate(matches, 1, 0) - 0.2) < 1e-9
    assert win_rate(matches, 0, 2) is None
