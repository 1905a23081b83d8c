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
from constitutional.feedback import Comparison, content_free_prior, few_shot_block, judge, require_all
from constitutional.hhh import HHH_PRINCIPLE, HHHItem, load_hhh
from constitutional.progress import stage_progress
from constitutional.report import accuracy_bars
from constitutional.stats import wilson_interval


@dataclass(frozen=True)
class Method:
    """How the feedback model is asked; `label`, the gate and every setting here share it."""

    ensemble: bool = False  # K constitution principles instead of the HHH instruction
    debias: bool = False  # both option orders, averaged
    calibrate: bool = False  # divide out the content-free prior (Zhao et al. 2021)
    few_shot: int | None = 0  # worked comparisons first (None: all of them)
    cot: bool = False  # chain of thought, clamped


SETTINGS: dict[str, tuple[Method, str]] = {
    "single": (Method(), "the HHH instruction, options in the paper's order, zero-shot"),
    "debias": (Method(debias=True), "as single, both option orders averaged"),
    "calibrate": (Method(calibrate=True), "as single, content-free prior divided out (Zhao et al. 2021)"),
    "few-shot": (Method(few_shot=None), "as single, after the constitution's worked comparisons"),
    "ensemble": (Method(ensemble=True), "K constitution principles averaged, paper's order"),
    "ensemble-debias": (Method(ensemble=True, debias=True), "K constitution principles, both orders"),
    "cot": (Method(cot=True, few_shot=None), "chain of thought after the CoT worked examples, clamped"),
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
    concurrency: int = 8  # requests in flight, for openai: engines


def hhh_accuracy(
    engine: Engine, items: list[HHHItem], method: Method, constitution: Constitution, principles: int, seed: int
) -> dict:
    """Accuracy of ``method`` on HHH items: an item counts as right when P(correct) > 0.5."""
    if method.ensemble:
        pool = [p.comparison for p in constitution.principles]
        drawn = [random.Random(f"{seed}:{n}").choices(pool, k=principles) for n in range(len(items))]
    else:
        drawn = [[HHH_PRINCIPLE]] * len(items)
    prefix = few_shot_block(constitution.few_shot.comparison[: method.few_shot], cot=method.cot)
    prior = content_free_prior(engine, [p for ps in drawn for p in ps], prefix) if method.calibrate else None
    questions, owner = [], []
    for n, it in enumerate(items):
        for pr in drawn[n]:
            questions.append((Comparison(it.messages, pr, it.a, it.b), it.correct == "A"))
            owner.append(n)
            if method.debias:
                questions.append((Comparison(it.messages, pr, it.b, it.a), it.correct == "B"))
                owner.append(n)
    probs = require_all(judge(engine, [q for q, _ in questions], prefix, cot=method.cot, prior=prior)[0], "HHH scoring")
    sums, counts = [0.0] * len(items), [0] * len(items)
    for n, p_a, (_, a_is_right) in zip(owner, probs, questions):
        sums[n] += p_a if a_is_right else 1 - p_a
        counts[n] += 1
    p_correct = [s / c for s, c in zip(sums, counts)]
    correct = sum(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in p_correct)
    lo, hi = wilson_interval(correct, len(items))
    return {
        "n": len(items),
        "accuracy": correct / len(items),
        "ci95": [lo, hi],
        "mean_p_correct": sum(p_correct) / len(items),
    }


def run_bench_feedback(opts: BenchOptions, engine: Engine | None = None) -> list[dict]:
    unknown = [s for s in opts.settings if s not in SETTINGS]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    constitution = constitution_lib.load(opts.constitution)
    items = load_hhh(opts.limit)
    engine = engine or load_engine(opts.model, opts.batch_size, threads=opts.threads, concurrency=opts.concurrency)
    rows = []
    with stage_progress() as bar:
        task = bar.add_task("bench-feedback", total=len(opts.settings))
        for setting in opts.settings:
            bar.update(task, description=f"bench-feedback: {setting}")
            method, description = SETTINGS[setting]
            result = hhh_accuracy(engine, items, method, constitution, opts.principles, opts.seed)
            rows.append({"setting": setting, **result, "description": description})
            bar.advance(task)
    accuracy_bars(
        opts.out / "feedback_accuracy.png",
        [r["setting"] for r in rows],
        [r["accuracy"] for r in rows],
        [tuple(r["ci95"]) for r in rows],
        f"Feedback accuracy on HHH comparisons\n{opts.model}, n={len(items)}",
    )
    return rows
