"""Read YAML, JSON or TOML into plain data, with errors that name the file and line.

Constitutions and pipeline configs both come through here, so a user sees the same kind of
message whichever file they got wrong.
"""

import json
from pathlib import Path
from typing import Any

import tomllib
import yaml

from constitutional.errors import UserError


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None


def load_structured(path: Path) -> Any:
    """Parse by extension: .json, .toml, anything else as YAML (a superset of JSON)."""
    text = read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON: {e.msg}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{path}: {where}invalid YAML: {problem}") from None
