"""The engine protocol: the only thing stages know about models.

Two calls cover the whole method: `chat` for answers, critiques and revisions, and
`choice_logprobs` for AI feedback, which reads the log-probability of "A" and "B" after a
multiple-choice prompt (Bai et al. 2022, section 4.1).
"""

from dataclasses import dataclass, field
from typing import Protocol

from constitutional.errors import UserError
from constitutional.messages import Conversation


class NoLogprobs(UserError):
    """The engine's server gives no log-probabilities; AI feedback must read generated text."""


@dataclass(frozen=True)
class Failure:
    """A request that failed after its retries; stages record it and a rerun retries it."""

    reason: str


@dataclass
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: list[str] = field(default_factory=list)


class Engine(Protocol):
    #: total tokens generated so far, for throughput reporting
    tokens_generated: int

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str | Failure]:
        """Answer each conversation (which ends with a user turn) with one assistant message.

        Remote engines return a `Failure` for a request that failed after its retries.
        """
        ...

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float] | Failure]:
        """Log-probability of each choice string as the continuation of each raw-text prompt."""
        ...


def chat_alive(
    engine: Engine, conversations: list[Conversation], params: SamplingParams, dead: dict[int, str]
) -> list[str]:
    """`engine.chat` for the rows not yet in ``dead``; rows whose request fails join ``dead``.

    Multi-step stages (critique, sample) call this at every step, so a row that failed once
    sends no further requests, and its record is logged as failed instead of written.
    """
    live = [i for i in range(len(conversations)) if i not in dead]
    out = [""] * len(conversations)
    answers = engine.chat([conversations[i] for i in live], params) if live else []
    for i, a in zip(live, answers):
        if isinstance(a, Failure):
            dead[i] = a.reason
        else:
            out[i] = a
    return out
