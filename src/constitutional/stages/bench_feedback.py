"""How good is the feedback model? `label`'s method scored on the paper's 438 HHH comparisons.

Bai et al. 2022 (Fig. 4) show feedback accuracy rising with model size, and helped by an
ensemble of principles and by chain of thought. This measures the same settings for the
model at hand, so a user can tell whether its labels are better than chance before
training on them.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

from constitutional import constitution as constitution_lib
from constitutional.constitution import Constitution
from constitutional.engines import DEFAULT_MODEL, Engine, load_engine
from constitutional.errors import UserError
from constitutional.feedback import Comparison, few_shot_block, judge
from constitutional.hhh import HHH_PRINCIPLE, HHHItem, load_hhh
from constitutional.progress import stage_progress
from constitutional.report import accuracy_bars
from constitutional.stats import wilson_interval

SETTINGS = {
    "single": "one principle (the HHH instruction), options in the paper's order",
    "debias": "one principle, both option orders averaged",
    "ensemble": "K constitution principles averaged, paper's order",
    "ensemble-debias": "K constitution principles, both orders",
    "cot": "chain of thought with the CoT few-shot examples, clamped",
}


@dataclass
class BenchOptions:
    model: str = DEFAULT_MODEL
    constitution: str = "anthropic-2022"
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    principles: int = 4
    limit: int | None = None
    batch_size: int = 16
    seed: int = 0
    out: Path = Path("bench-feedback")
    threads: int | None = None


def _score(engine: Engine, items: list[HHHItem], principles: list[str], debias: bool, prefix: str, cot: bool):
    """Per item, P(correct): the mean over principles (and orders) of the correct option's probability."""
    questions, owner = [], []
    for n, it in enumerate(items):
        for pr in principles[n]:
            questions.append((Comparison(it.messages, pr, it.a, it.b), it.correct == "A"))
            owner.append(n)
            if debias:
                questions.append((Comparison(it.messages, pr, it.b, it.a), it.correct == "B"))
                owner.append(n)
    probs, _ = judge(engine, [q for q, _ in questions], prefix, cot=cot)
    sums, counts = [0.0] * len(items), [0] * len(items)
    for n, p_a, (_, a_is_right) in zip(owner, probs, questions):
        sums[n] += p_a if a_is_right else 1 - p_a
        counts[n] += 1
    return [s / c for s, c in zip(sums, counts)]


def _run_setting(
    engine: Engine, setting: str, items: list[HHHItem], drawn: list[list[str]], constitution: Constitution
) -> dict:
    cot = setting == "cot"
    prefix = few_shot_block(constitution.few_shot.comparison, cot=True) if cot else ""
    principles = drawn if setting.startswith("ensemble") else [[HHH_PRINCIPLE]] * len(items)
    p_correct = _score(engine, items, principles, setting.endswith("debias"), prefix, cot)
    correct = sum(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in p_correct)
    lo, hi = wilson_interval(correct, len(items))
    return {
        "setting": setting,
        "n": len(items),
        "accuracy": correct / len(items),
        "ci95": [lo, hi],
        "mean_p_correct": sum(p_correct) / len(items),
        "description": SETTINGS[setting],
    }


def run_bench_feedback(opts: BenchOptions, engine: Engine | None = None) -> list[dict]:
    unknown = [s for s in opts.settings if s not in SETTINGS]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    constitution = constitution_lib.load(opts.constitution)
    items = load_hhh(opts.limit)
    engine = engine or load_engine(opts.model, opts.batch_size, threads=opts.threads)
    pool = [p.comparison for p in constitution.principles]
    drawn = [random.Random(f"{opts.seed}:{n}").choices(pool, k=opts.principles) for n in range(len(items))]
    rows = []
    with stage_progress() as bar:
        task = bar.add_task("bench-feedback", total=len(opts.settings))
        for setting in opts.settings:
            bar.update(task, description=f"bench-feedback: {setting}")
            rows.append(_run_setting(engine, setting, items, drawn, constitution))
            bar.advance(task)
    accuracy_bars(
        opts.out / "feedback_accuracy.png",
        [r["setting"] for r in rows],
        [r["accuracy"] for r in rows],
        [tuple(r["ci95"]) for r in rows],
        f"Feedback accuracy on HHH comparisons\n{opts.model}, n={len(items)}",
    )
    return rows
