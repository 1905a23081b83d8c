"""The chat message type shared by constitutions, prompt sets, engines and records.

Conversations are plain lists of ``{"role", "content"}`` dicts so that every record file
loads with ``datasets`` and goes straight into TRL.
"""

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]
Conversation = list[dict[str, str]]


class Message(BaseModel):
    """One chat turn, validated when it comes from a user's file."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


def check_turns(messages: list[Message], last: Role) -> str | None:
    """Return why ``messages`` is not an alternating user/assistant chat ending with ``last``."""
    turns = [m for m in messages if m.role != "system"]
    if not turns:
        return "has no user or assistant turn"
    if turns[0].role != "user":
        return "must start with a user turn"
    for before, after in pairwise(turns):
        if before.role == after.role:
            return f"has two {before.role} turns in a row"
    if turns[-1].role != last:
        return f"must end with a {last} turn"
    return None


#: Passed explicitly so that every stage (generation, SFT, PM, policy) sees the same input;
#: some chat templates, SmolLM2's among them, insert their own when none is given.
DEFAULT_SYSTEM = "You are a helpful AI assistant."


def with_system(conversation: Conversation, system: str | None) -> Conversation:
    if not system or (conversation and conversation[0]["role"] == "system"):
        return conversation
    return [{"role": "system", "content": system}, *conversation]
