"""The multiple-choice AI-feedback prompt and how its answer is read (Bai et al. 2022, 4.1).

    Consider the following conversation between a human and an assistant:
    [conversation]
    [principle]
    Options:
    (A) [response A]
    (B) [response B]
    The answer is: (

The prompt ends inside the parenthesis, so the next token is the letter: the normalised
probabilities of "A" and "B" are the soft label. The constitution's worked comparisons go
first, answered, as a shared prefix. `label`, `bench-feedback` and `evaluate` all use this.
"""

import math
import re
from dataclasses import dataclass

from constitutional.constitution import ComparisonExample
from constitutional.engines import Engine, Failure, NoLogprobs, SamplingParams, chat_alive
from constitutional.errors import UserError
from constitutional.messages import Conversation

ANSWER = "The answer is: ("
COT_CUE = "Let's think step by step:"
CHOICES = ["A", "B"]


def render_conversation(messages: Conversation) -> str:
    names = {"user": "Human", "assistant": "Assistant"}
    return "\n\n".join(f"{names[m['role']]}: {m['content']}" for m in messages if m["role"] in names)


def question(messages: Conversation, principle: str, a: str, b: str) -> str:
    return (
        "Consider the following conversation between a human and an assistant:\n\n"
        f"{render_conversation(messages)}\n\n{principle}\nOptions:\n(A) {a}\n(B) {b}\n\n"
    )


def few_shot_block(examples: list[ComparisonExample], cot: bool) -> str:
    """Worked comparisons, answered; with ``cot`` only those that carry reasoning."""
    parts = []
    for ex in examples:
        if cot and not ex.reasoning:
            continue
        text = question([m.model_dump() for m in ex.messages], ex.principle, *ex.options)
        if cot:
            text += f"{COT_CUE} {ex.reasoning}\n\n"
        parts.append(f"{text}{ANSWER}{ex.answer})\n\n\n")
    return "".join(parts)


def letter_probability(logp_a: float, logp_b: float) -> float:
    """P(A) from the two letters' log-probs, normalised over just these two."""
    top = max(logp_a, logp_b)
    ea, eb = math.exp(logp_a - top), math.exp(logp_b - top)
    return ea / (ea + eb)


@dataclass(frozen=True)
class Comparison:
    """One question for the feedback model: which of ``a``/``b`` better follows ``principle``."""

    messages: Conversation
    principle: str
    a: str
    b: str


#: content-free stand-ins for a conversation and its options (Zhao et al. 2021)
CONTENT_FREE = ["N/A", "", "[MASK]"]


def content_free_prior(engine: Engine, principles: list[str], prefix: str = "") -> dict[str, float]:
    """The feedback model's P(A) per principle when neither option says anything.

    "Calibrate Before Use" (Zhao et al. 2021) shows that a model's answer prior shows up
    on content-free inputs; dividing it out removes a fixed preference for one letter at
    the cost of a few extra scorings per principle, not a second order per question.
    """
    unique = list(dict.fromkeys(principles))
    items = [Comparison([{"role": "user", "content": cf}], pr, cf, cf) for pr in unique for cf in CONTENT_FREE]
    probs = require_all(judge(engine, items, prefix)[0], "content-free calibration")
    k = len(CONTENT_FREE)
    return {pr: sum(probs[i * k : (i + 1) * k]) / k for i, pr in enumerate(unique)}


def calibrated(p_a: float, prior_a: float) -> float:
    """P(A) with the prior divided out: q_A ~ p_A / prior_A, q_B ~ p_B / prior_B, renormalised."""
    prior_a = min(max(prior_a, 1e-6), 1 - 1e-6)
    qa, qb = p_a / prior_a, (1 - p_a) / (1 - prior_a)
    return qa / (qa + qb)


def judge(
    engine: Engine,
    items: list[Comparison],
    prefix: str = "",
    cot: bool = False,
    clamp: tuple[float, float] = (0.4, 0.6),
    max_new_tokens: int = 200,
    prior: dict[str, float] | None = None,
) -> tuple[list[float | Failure], list[str | None]]:
    """P(A) for each comparison, all scored in one batched call; and the reasoning under ``cot``.

    A comparison whose request failed (remote engines) comes back as a `Failure`.

    Chain-of-thought probabilities are clamped, as in the paper: the reasoning makes the
    model overconfident, and clamped labels train a better preference model (section 4.1).
    ``prior`` (from `content_free_prior`) calibrates each answer by its principle's prior.
    """
    questions = [question(c.messages, c.principle, c.a, c.b) for c in items]
    reasoning: list[str | None] = [None] * len(items)
    failed: dict[int, str] = {}
    if cot:
        reasoning = chat_alive(
            engine,
            [[{"role": "user", "content": f"{q}{COT_CUE}"}] for q in questions],
            SamplingParams(max_new_tokens=max_new_tokens),
            failed,
        )
        questions = [f"{q}{COT_CUE} {r}\n\n" for q, r in zip(questions, reasoning)]
    live = [i for i in range(len(items)) if i not in failed]
    try:
        scores = engine.choice_logprobs([prefix + questions[i] + ANSWER for i in live], CHOICES) if live else []
    except NoLogprobs:
        if not cot:
            raise
        # A server without log-probs: the letter is read from the reasoning itself.
        scores = [text_scores(reasoning[i]) for i in live]
    probs: list[float | Failure] = [0.0] * len(items)
    for i, reason in failed.items():
        probs[i] = Failure(reason)
    for i, score in zip(live, scores):
        if isinstance(score, Failure):
            probs[i] = score
            continue
        p = letter_probability(*score)
        if prior is not None:
            p = calibrated(p, prior[items[i].principle])
        if cot:
            p = min(max(p, clamp[0]), clamp[1])
        probs[i] = p
    return probs, reasoning


_STATED = re.compile(r"answer is:?\s*\(?([AB])\b|\(([AB])\)", re.IGNORECASE)


def text_vote(text: str | None) -> str | None:
    """The letter a generated answer settles on (its last stated choice), or None if it has none."""
    found = [a or b for a, b in _STATED.findall(text or "")]
    return found[-1].upper() if found else None


def text_scores(text: str | None) -> list[float]:
    """Log-scores for A and B from text: the stated letter wins, and garbage abstains (P(A) = 0.5)."""
    letter = text_vote(text)
    if letter is None:
        return [0.0, 0.0]
    return [0.0, -math.inf] if letter == "A" else [-math.inf, 0.0]


def require_all(probs: list, what: str) -> list[float]:
    """The probabilities, or one clear error if any request failed (for measurements, not data)."""
    failures = [p for p in probs if isinstance(p, Failure)]
    if failures:
        raise UserError(f"{what}: {len(failures)} of {len(probs)} feedback requests failed, e.g. {failures[0].reason}")
    return probs
