"""All record I/O: append-only JSONL shards, resume by id, manifests, locks and export.

Stages hold no file logic of their own. A batch of records is appended, flushed and fsynced
before the next batch starts, so a crash loses at most the batch in flight; a half-written
last line (a crash mid-write) is cut off on the next open.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from constitutional.errors import UserError
from constitutional.secrets import redact


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read every complete record; a torn last line is ignored (it is repaired on append)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    out = []
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if n == len(lines):  # last line without newline: an interrupted write
                break
            raise UserError(f"{path}: line {n}: not a JSON record ({e})") from None
    return out


def _repair_tail(path: Path) -> None:
    """Drop a final line that has no newline: it was being written when the process died."""
    with path.open("rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)


class RecordWriter:
    """Append records to a JSONL file, skipping ids it already holds.

    Opening takes an exclusive lock (``FILE.lock``) so that two runs never interleave into
    the same output; the second one gets a clear error instead.
    """

    def __init__(self, path: Path, resume: bool = True):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(path.with_name(path.name + ".lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise UserError(f"{path}: another run is writing this file (lock held)") from None
        if path.exists() and not resume:
            path.unlink()
        if path.exists():
            _repair_tail(path)
            self.done = {r["id"] for r in read_records(path)}
        else:
            self.done = set()
        self.failed_now: set[str] = set()
        self._file = path.open("a", encoding="utf-8")

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        lines = []
        for r in records:
            if r["id"] not in self.done:
                lines.append(json.dumps(r, ensure_ascii=False) + "\n")
                self.done.add(r["id"])
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise UserError(f"{self.path}: write failed ({e.strerror}); records already written are intact") from None

    def fail(self, failures: Iterable[tuple[str, str]]) -> None:
        """Log (id, reason) for records whose requests failed after their retries.

        They go to ``FILE.failed.jsonl``, not the output, so a rerun (which skips only ids in
        the output) retries exactly these.
        """
        failures = list(failures)
        lines = [
            json.dumps({"id": rid, "reason": redact(reason), "time": time.time()}) + "\n" for rid, reason in failures
        ]
        if not lines:
            return
        with self.failed_path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        self.failed_now.update(rid for rid, _ in failures)

    @property
    def failed_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".failed.jsonl")

    def close(self) -> None:
        # After a failed write the buffer still holds the unwritten tail; dropping it is right,
        # since the next open cuts any partial line anyway.
        with contextlib.suppress(OSError):
            self._file.close()
        self._lock.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file so that readers see the old or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("constitutional-ai", "torch", "transformers", "trl", "peft", "datasets"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def write_manifest(output: Path, **fields: Any) -> Path:
    """Record how ``output`` was made, beside it: inputs' hashes, model, parameters, versions."""
    path = output.with_name(output.stem + ".manifest.json") if output.suffix else output / "manifest.json"
    body = {"output": output.name, **fields, "versions": _versions()}
    write_atomic(path, redact(json.dumps(body, indent=2, default=str)) + "\n")
    return path


def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sft_view(record: dict[str, Any]) -> dict[str, Any]:
    """Add TRL's conversational prompt/completion columns to a record that has ``messages``."""
    if "messages" in record and "completion" not in record:
        *prompt, last = record["messages"]
        if last.get("role") == "assistant":
            return {**record, "prompt": prompt, "completion": [last]}
    return record


def export_records(path: Path, fmt: str, out: Path) -> Path:
    """Write records as Parquet or a `datasets` folder, both loadable by `datasets`."""
    import datasets

    records = [sft_view(r) for r in read_records(path)]
    if not records:
        raise UserError(f"{path}: no records to export")
    ds = datasets.Dataset.from_list(records)
    if fmt == "parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(out))
    elif fmt == "hf":
        ds.save_to_disk(str(out))
    else:
        raise UserError(f"--format must be parquet or hf, got {fmt!r}")
    return out
