"""Constitutions as data: principles and few-shot examples, loaded and validated.

A principle carries all three texts the method needs (Bai et al. 2022, Appendix C): a
critique request and a revision request for SL-CAI, and a multiple-choice comparison
instruction for AI feedback. Every validation error names the file, the principle and the
field, because constitutions are written by hand and edited often.
"""

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from constitutional.errors import UserError
from constitutional.fileformats import load_structured
from constitutional.messages import Message, check_turns

PRESET_DIR = resources.files("constitutional") / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


NonEmpty = Field(min_length=1)


class Principle(_Strict):
    id: str = NonEmpty
    critique: str = NonEmpty
    revision: str = NonEmpty
    comparison: str = NonEmpty


class CritiqueRevisionExample(_Strict):
    """A worked critique and revision of the last assistant turn of ``messages``."""

    messages: list[Message]
    critique_request: str = NonEmpty
    critique: str = NonEmpty
    revision_request: str = NonEmpty
    revision: str = NonEmpty

    @field_validator("messages")
    @classmethod
    def _ends_with_answer(cls, v: list[Message]) -> list[Message]:
        if problem := check_turns(v, last="assistant"):
            raise ValueError(f"conversation {problem}")
        return v


class ComparisonExample(_Strict):
    """A worked multiple-choice comparison; ``reasoning`` feeds the chain-of-thought variant."""

    messages: list[Message]
    principle: str = NonEmpty
    options: tuple[str, str]
    answer: Literal["A", "B"]
    reasoning: str | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_question(cls, v: list[Message]) -> list[Message]:
        if problem := check_turns(v, last="user"):
            raise ValueError(f"conversation {problem}")
        return v


class FewShot(_Strict):
    critique_revision: list[CritiqueRevisionExample] = []
    comparison: list[ComparisonExample] = []


class Constitution(_Strict):
    name: str = NonEmpty
    description: str = ""
    principles: list[Principle] = Field(min_length=1)
    few_shot: FewShot = FewShot()

    @model_validator(mode="after")
    def _unique_ids(self) -> "Constitution":
        seen: set[str] = set()
        for p in self.principles:
            if p.id in seen:
                raise ValueError(f"duplicate principle id {p.id!r}")
            seen.add(p.id)
        return self

    def principle(self, pid: str) -> Principle:
        for p in self.principles:
            if p.id == pid:
                return p
        raise UserError(f"constitution {self.name!r} has no principle {pid!r}")

    def subset(self, ids: list[str]) -> "Constitution":
        """Keep only ``ids`` (the `--principles` option), failing on any unknown id."""
        chosen = [self.principle(i) for i in ids]
        return self.model_copy(update={"principles": chosen})

    def fingerprint(self) -> str:
        """A content hash for manifests: changes whenever any text that prompts depend on does."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in PRESET_DIR.iterdir() if p.name.endswith(".yaml"))


def _locate(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn a pydantic location into words a constitution author recognises."""
    parts: list[str] = []
    node = raw
    for i, key in enumerate(loc):
        if isinstance(key, int):
            item = node[key] if isinstance(node, list) and key < len(node) else None
            pid = item.get("id") if isinstance(item, dict) and loc[i - 1] == "principles" else None
            parts[-1] += f"[{key}]" + (f" (id {pid!r})" if pid else "")
            node = item
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    if len(parts) > 1 and parts[0].startswith("principles["):
        return f"principle {parts[0][len('principles') :]}, field {'.'.join(parts[1:])!r}"
    return f"field {'.'.join(parts)!r}" if parts else "top level"


def parse(raw: Any, source: str) -> Constitution:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping with 'name' and 'principles', got {type(raw).__name__}")
    try:
        return Constitution.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = _locate(tuple(first["loc"]), raw)
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {where}: {msg}{more}") from None


def load(ref: str | Path) -> Constitution:
    """Load a constitution from a YAML/JSON/TOML file, or a built-in preset by name."""
    path = Path(ref)
    if path.exists():
        return parse(load_structured(path), str(path))
    if str(ref) in presets():
        preset = PRESET_DIR / f"{ref}.yaml"
        with resources.as_file(preset) as p:
            return parse(load_structured(p), f"preset {ref!r}")
    raise UserError(f"{ref}: no such file, and no preset of that name (presets: {', '.join(presets())})")
