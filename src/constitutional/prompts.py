"""Prompt sets: built-in red-team and helpfulness prompts, and the user's own files.

Every source becomes a list of `Prompt` with a stable id, so that stages can resume by id
whatever the file format was.
"""

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from constitutional.errors import UserError
from constitutional.messages import Conversation, Message, check_turns

BUILTIN_DIR = resources.files("constitutional") / "data" / "prompts"
BUILTIN = {"red-team": "red_team.jsonl", "helpful": "helpful.jsonl"}
MAX_PROMPT_CHARS = 100_000
_MESSAGES = TypeAdapter(list[Message])


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: Conversation
    category: str = ""
    meta: dict = field(default_factory=dict, compare=False)


def content_id(messages: Conversation) -> str:
    """A stable id from the text alone, so the same prompt always resumes as the same record."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _prompt(messages: object, where: str, pid: object = None, category: object = "") -> Prompt:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    try:
        parsed = _MESSAGES.validate_python(messages)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"{where}: messages[{loc}]: {err['msg']}") from None
    if problem := check_turns(parsed, last="user"):
        raise UserError(f"{where}: the conversation {problem}")
    if not any(m.content.strip() for m in parsed):
        raise UserError(f"{where}: the prompt is empty")
    size = sum(len(m.content) for m in parsed)
    if size > MAX_PROMPT_CHARS:
        raise UserError(f"{where}: prompt of {size:,} characters, over the {MAX_PROMPT_CHARS:,} limit")
    convo = [m.model_dump() for m in parsed]
    return Prompt(id=str(pid) if pid else content_id(convo), messages=convo, category=str(category or ""))


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a prompt file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: not UTF-8 text (byte {e.start})") from None
    return text.splitlines()


def _from_jsonl(path: Path, label: str) -> list[Prompt]:
    out = []
    for n, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{label}: line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object")
        if "messages" in obj:
            msgs = obj["messages"]
        elif "prompt" in obj:
            msgs = obj["prompt"]
        else:
            raise UserError(f"{where}: needs a 'messages' or a 'prompt' field")
        out.append(_prompt(msgs, where, obj.get("id"), obj.get("category", "")))
    return out


def _from_csv(path: Path, column: str) -> list[Prompt]:
    rows = csv.DictReader(_read_lines(path))
    if rows.fieldnames is None:
        raise UserError(f"{path}: empty CSV file")
    if column not in rows.fieldnames:
        raise UserError(f"{path}: no column {column!r} (columns: {', '.join(rows.fieldnames)})")
    return [
        _prompt(row[column] or "", f"{path}: line {n}", row.get("id"), row.get("category", ""))
        for n, row in enumerate(rows, 2)
    ]


def _from_txt(path: Path) -> list[Prompt]:
    return [_prompt(line, f"{path}: line {n}") for n, line in enumerate(_read_lines(path), 1) if line.strip()]


def _from_hub(ref: str) -> list[Prompt]:
    parts = ref.removeprefix("hf:").split(":")
    if len(parts) not in (3, 4):
        raise UserError(f"{ref}: expected hf:NAME[:CONFIG]:SPLIT:COLUMN")
    name, config, split, column = parts if len(parts) == 4 else (parts[0], None, *parts[1:])
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the hub raises many types; all mean the same to the user
        raise UserError(f"{ref}: could not load the dataset from the Hugging Face Hub: {e}") from None
    if column not in ds.column_names:
        raise UserError(f"{ref}: no column {column!r} (columns: {', '.join(ds.column_names)})")
    return [_prompt(value, f"{ref}: row {i}") for i, value in enumerate(ds[column])]


def _builtin(name: str, split: str | None) -> list[Prompt]:
    with resources.as_file(BUILTIN_DIR / BUILTIN[name]) as path:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [
        _prompt(o["messages"], f"builtin {name}", o["id"], o["category"])
        for o in lines
        if split is None or o["split"] == split
    ]


def load_prompts(ref: str | Path, limit: int | None = None) -> list[Prompt]:
    """Load prompts from a built-in set, a JSONL/CSV/TXT file, or ``hf:`` dataset reference.

    Built-in sets are ``red-team`` and ``helpful``, optionally ``:train`` or ``:test`` (the
    held-out split used by evaluation). CSV takes ``FILE.csv:COLUMN`` (default ``prompt``).
    Prompts with the same id are kept once.
    """
    ref = str(ref)
    name, _, split = ref.partition(":")
    if name in BUILTIN and split in ("", "train", "test") and not Path(ref).exists():
        prompts = _builtin(name, split or None)
    elif ref.startswith("hf:"):
        prompts = _from_hub(ref)
    else:
        m = re.fullmatch(r"(.+\.csv)(?::(.+))?", ref, flags=re.IGNORECASE)
        path = Path(m.group(1) if m else ref)
        if m:
            prompts = _from_csv(path, m.group(2) or "prompt")
        elif path.suffix.lower() in (".jsonl", ".json"):
            prompts = _from_jsonl(path, str(path))
        elif path.suffix.lower() == ".txt":
            prompts = _from_txt(path)
        elif not path.exists():
            raise UserError(f"{ref}: no such file, and not a built-in set ({', '.join(BUILTIN)}) or hf: reference")
        else:
            raise UserError(f"{ref}: unknown prompt file type; use .jsonl, .csv or .txt")
    if not prompts:
        raise UserError(f"{ref}: no prompts found")
    unique = list({p.id: p for p in prompts}.values())
    return unique[:limit] if limit else unique
