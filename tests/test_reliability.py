"""Crashes and faults lose nothing: SIGKILL at random points, and a full disk, on real stages."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import write_jsonl

from constitutional.records import read_records

pytestmark = pytest.mark.slow
N = 24  # records per stage: enough chunks for kills to land mid-run


def cai(*args: str) -> list[str]:
    return [sys.executable, "-m", "constitutional", *args]


def _close(a, b, tol: float = 1e-5) -> bool:
    """Equal, except that floats may differ by ``tol``, through any nesting of dicts and lists."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return a == b


def stage_args(stage: str, tmp_path, model) -> tuple[list[str], object]:
    common = ["--model", str(model), "--batch-size", "2", "--chunk", "2", "--threads", "1"]
    if stage == "critique":
        out = tmp_path / "sl.jsonl"
        return cai("critique", *common, "--out", str(out), "--limit", str(N), "--revisions", "1",
                   "--few-shot", "1", "--max-new-tokens", "16"), out  # fmt: skip
    if stage == "sample":
        out = tmp_path / "pairs.jsonl"
        return cai("sample", *common, "--out", str(out), "--limit", str(N), "--temperature", "0",
                   "--max-new-tokens", "16"), out  # fmt: skip
    pairs = write_jsonl(
        tmp_path / "in-pairs.jsonl",
        [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"q {i}"}], "responses": [f"yes {i}", f"no {i}"]}
         for i in range(N)],
    )  # fmt: skip
    out = tmp_path / "prefs.jsonl"
    return cai("label", *common, "--pairs", str(pairs), "--out", str(out), "--principles", "4",
               "--few-shot", "3", "--gate", "0"), out  # fmt: skip


@pytest.mark.parametrize("stage", ["critique", "sample", "label"])
def test_repeated_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path, tiny_model_dir, stage):
    (tmp_path / "clean").mkdir()
    clean_args, clean_out = stage_args(stage, tmp_path / "clean", tiny_model_dir)
    subprocess.run(clean_args, check=True, capture_output=True, timeout=600)
    want = {r["id"]: r for r in read_records(clean_out)}
    assert len(want) == N

    (tmp_path / "killed").mkdir()
    args, out = stage_args(stage, tmp_path / "killed", tiny_model_dir)
    rng = random.Random(stage)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = len(read_records(out)) if out.exists() else 0
        # Let it write at least one more chunk, then kill it at a random moment.
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and (not out.exists() or len(read_records(out)) <= before):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        got = read_records(out)
        assert len({r["id"] for r in got}) == len(got), "no duplicates, even mid-run"
    assert kills >= 2, "the kills must land mid-run"
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1]), "no half-written line remains"
    got = {r["id"]: r for r in read_records(out)}
    # Identical to the uninterrupted greedy run; label's probabilities to float precision, since
    # a resumed run batches (and so pads) differently, which moves log-probs by ~1e-7.
    assert _close(got, want) if stage == "label" else got == want


def test_a_full_disk_stops_the_stage_cleanly_and_a_rerun_completes(tmp_path, tiny_model_dir):
    args, out = stage_args("sample", tmp_path, tiny_model_dir)
    limit = 6000  # bytes: room for a few records, not for all of them

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run(args, capture_output=True, text=True, preexec_fn=small_disk, timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "write failed" in r.stderr and "records already written are intact" in r.stderr
    assert "Traceback" not in r.stderr
    kept = read_records(out)
    assert 0 < len(kept) < N
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    final = read_records(out)
    assert len(final) == N and len({r["id"] for r in final}) == N
    assert final[: len(kept)] == kept


def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, tiny_model_dir):
    rows = [
        {"id": str(i), "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(8)
    ]
    data = write_jsonl(tmp_path / "sl.jsonl", rows)
    out = tmp_path / "sl-cai"
    args = cai("sft", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(out), "--epochs", "3",
               "--batch-size", "2", "--max-length", "64", "--save-steps", "2", "--threads", "1")  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "checkpoint-4" / "trainer_state.json").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = max(int(p.name.split("-")[1]) for p in ckpts.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    assert 4 <= done < 12, "the kill must land mid-training"
    r = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    # Only the steps after the checkpoint were trained again: one loss log per remaining step.
    assert (r.stdout + r.stderr).count("'loss':") == 12 - done
    stats = json.loads((out / "manifest.json").read_text())["stats"]
    assert stats["steps"] == 12
