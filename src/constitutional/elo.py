"""Elo scores from pairwise comparisons: a Bradley-Terry fit with bootstrap intervals.

Bai et al. 2022 report harmlessness and helpfulness as Elo scores fitted to crowdworker
comparisons. Here each comparison carries a soft outcome (the judge's probability that the
first model's answer is better, both orders averaged), so the fit maximises
sum p log s(r_i - r_j) + (1 - p) log s(r_j - r_i) by Newton's method. A weak Gaussian prior
keeps the optimum finite when one model wins every comparison. Intervals come from
resampling prompts, not single comparisons, because comparisons on one prompt are correlated.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: one natural-log unit of Bradley-Terry strength is this many Elo points
ELO_PER_UNIT = 400 / math.log(10)


@dataclass(frozen=True)
class Match:
    """Model ``i`` against model ``j`` on one prompt; ``p_i`` is i's (soft) win."""

    i: int
    j: int
    p_i: float
    group: str = ""


def fit_strengths(n_models: int, matches: Sequence[Match], prior: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Maximum a posteriori Bradley-Terry strengths, natural units, mean zero."""
    s = np.zeros(n_models)
    if not matches:
        return s
    i = np.array([m.i for m in matches])
    j = np.array([m.j for m in matches])
    p = np.array([m.p_i for m in matches], dtype=float)
    for _ in range(iters):
        q = 1 / (1 + np.exp(-(s[i] - s[j])))
        g = -prior * s
        np.add.at(g, i, p - q)
        np.add.at(g, j, q - p)
        w = q * (1 - q)
        h = -prior * np.eye(n_models)
        np.add.at(h, (i, i), -w)
        np.add.at(h, (j, j), -w)
        np.add.at(h, (i, j), w)
        np.add.at(h, (j, i), w)
        step = np.linalg.solve(h, g)
        s = s - step
        if np.max(np.abs(step)) < 1e-9:
            break
    return s - s.mean()


@dataclass
class EloResult:
    names: list[str]
    elo: list[float]
    ci95: list[tuple[float, float]]
    n_matches: int


def fit_elo(names: list[str], matches: Sequence[Match], bootstrap: int = 1000, seed: int = 0) -> EloResult:
    """Elo relative to the first model (which scores 0), with 95% percentile intervals."""

    def to_elo(s: np.ndarray) -> np.ndarray:
        return (s - s[0]) * ELO_PER_UNIT

    point = to_elo(fit_strengths(len(names), matches))
    groups: dict[str, list[Match]] = {}
    for m in matches:
        groups.setdefault(m.group, []).append(m)
    keys = list(groups)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(bootstrap if len(keys) > 1 else 0):
        sample = [m for k in rng.choice(len(keys), size=len(keys)) for m in groups[keys[k]]]
        draws.append(to_elo(fit_strengths(len(names), sample)))
    if draws:
        lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
        ci = [(float(a), float(b)) for a, b in zip(lo, hi)]
    else:
        ci = [(float(e), float(e)) for e in point]
    return EloResult(names, [float(e) for e in point], ci, len(matches))


def win_rate(matches: Sequence[Match], a: int, b: int) -> float | None:
    """Mean soft win of model ``a`` over model ``b``; None if they never met."""
    wins = [m.p_i if m.i == a else 1 - m.p_i for m in matches if {m.i, m.j} == {a, b}]
    return sum(wins) / len(wins) if wins else None
