"""The engine protocol: the only thing stages know about models.

Two calls cover the whole method: `chat` for answers, critiques and revisions, and
`choice_logprobs` for AI feedback, which reads the log-probability of "A" and "B" after a
multiple-choice prompt (Bai et al. 2022, section 4.1).
"""

from dataclasses import dataclass, field
from typing import Protocol

from constitutional.messages import Conversation


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

    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str]:
        """Answer each conversation (which ends with a user turn) with one assistant message."""
        ...

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        """Log-probability of each choice string as the continuation of each raw-text prompt."""
        ...
