import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise

import pytest
from conftest import write_jsonl

from constitutional import constitution as cl
from constitutional.records import read_records
from constitutional.stages.critique import CritiqueOptions, draw_principles, few_shot_turns, run_critique


def opts(tmp_path, **kw) -> CritiqueOptions:
    base = dict(
        prompts="red-team:train",
        out=tmp_path / "sl.jsonl",
        revisions=2,
        limit=6,
        batch_size=4,
        chunk=4,
        max_new_tokens=8,
    )
    return CritiqueOptions(**(base | kw))


def test_records_follow_the_design_format(tmp_path, tiny_engine):
    run_critique(opts(tmp_path), tiny_engine)
    records = read_records(tmp_path / "sl.jsonl")
    ids = {p.id for p in cl.load("default").principles}
    assert len(records) == 6 and len({r["id"] for r in records}) == 6
    for r in records:
        assert set(r) == {"id", "category", "prompt", "initial", "rounds", "messages"}
        assert r["prompt"][0] == {"role": "system", "content": "You are a helpful AI assistant."}
        assert len(r["rounds"]) == 2
        assert all(rd["principle"] in ids and rd["critique"] is not None for rd in r["rounds"])
        assert r["messages"][:-1] == r["prompt"]
        assert r["messages"][-1] == {"role": "assistant", "content": r["rounds"][-1]["revision"]}
    manifest = json.loads((tmp_path / "sl.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["constitution"]["name"] == "default"
    assert manifest["params"]["revisions"] == 2 and "transformers" in manifest["versions"]


def test_no_critique_revises_directly_and_zero_revisions_keeps_initial(tmp_path, tiny_engine):
    run_critique(opts(tmp_path, critique=False), tiny_engine)
    assert all(rd["critique"] is None for r in read_records(tmp_path / "sl.jsonl") for rd in r["rounds"])
    run_critique(opts(tmp_path, out=tmp_path / "zero.jsonl", revisions=0), tiny_engine)
    for r in read_records(tmp_path / "zero.jsonl"):
        assert r["rounds"] == [] and r["messages"][-1]["content"] == r["initial"]


def test_principles_subset_and_system_prompt(tmp_path, tiny_engine):
    pick = [p.id for p in cl.load("default").principles[:2]]
    run_critique(opts(tmp_path, principles=pick, system=None), tiny_engine)
    records = read_records(tmp_path / "sl.jsonl")
    assert {rd["principle"] for r in records for rd in r["rounds"]} <= set(pick)
    assert all(r["prompt"][0]["role"] == "user" for r in records)


def test_principle_draws_are_reproducible_per_record():
    pool = cl.load("anthropic-2022").principles
    a = [p.id for p in draw_principles("rt-0001", pool, 8, seed=0)]
    assert a == [p.id for p in draw_principles("rt-0001", pool, 8, seed=0)]
    assert a != [p.id for p in draw_principles("rt-0001", pool, 8, seed=1)]
    assert len(set(a)) > 1


def test_few_shot_examples_become_alternating_chat_turns():
    turns = few_shot_turns(cl.load("anthropic-2022"), 2)
    roles = [t["role"] for t in turns]
    assert all(a != b for a, b in pairwise(roles))
    assert roles[0] == "user" and roles[-1] == "assistant"
    assert few_shot_turns(cl.load("anthropic-2022"), 0) == []


def test_resume_adds_only_missing_records(tmp_path, tiny_engine):
    run_critique(opts(tmp_path, limit=3), tiny_engine)
    first = (tmp_path / "sl.jsonl").read_text()
    stats = run_critique(opts(tmp_path, limit=6), tiny_engine)
    assert stats["new"] == 3
    text = (tmp_path / "sl.jsonl").read_text()
    assert text.startswith(first) and len(read_records(tmp_path / "sl.jsonl")) == 6


def test_user_prompt_file_with_multi_turn_prompts(tmp_path, tiny_engine):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            },
            {"prompt": "single"},
        ],
    )
    run_critique(opts(tmp_path, prompts=str(src), revisions=1), tiny_engine)
    records = read_records(tmp_path / "sl.jsonl")
    assert [len(r["prompt"]) for r in records] == [4, 2]


def cai(*args: str) -> list[str]:
    return [sys.executable, "-c", "from constitutional.cli import main; main()", *args]


def test_sigkilled_run_resumes_without_loss_or_duplicates(tmp_path, tiny_model_dir):
    out = tmp_path / "sl.jsonl"
    args = cai(
        "critique",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--limit",
        "24",
        "--revisions",
        "1",
        "--batch-size",
        "2",
        "--chunk",
        "2",
        "--max-new-tokens",
        "24",
        "--threads",
        "1",
    )
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 4):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = read_records(out)
    assert 4 <= len(killed_at) < 24, "the kill must land mid-run"
    subprocess.run(args, check=True, capture_output=True)
    records = read_records(out)
    assert len(records) == 24 and len({r["id"] for r in records}) == 24
    assert records[: len(killed_at)] == killed_at, "finished records are never redone"


def test_cli_rejects_out_of_range_options(tmp_path):
    r = subprocess.run(cai("critique", "--revisions", "-1"), capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_embedded_model_critique_end_to_end(tmp_path):
    out = tmp_path / "sl.jsonl"
    r = subprocess.run(
        cai("critique", "--limit", "4", "--revisions", "2", "--out", str(out), "--max-new-tokens", "64"),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    records = read_records(out)
    ids = {p.id for p in cl.load("default").principles}
    assert len(records) == 4 and len({r["id"] for r in records}) == 4
    for rec in records:
        assert rec["initial"].strip()
        assert len(rec["rounds"]) == 2
        for rd in rec["rounds"]:
            assert rd["principle"] in ids and rd["critique"].strip() and rd["revision"].strip()
    exported = tmp_path / "sl.parquet"
    assert subprocess.run(cai("export", str(out), "--out", str(exported)), capture_output=True).returncode == 0
    import datasets

    assert datasets.Dataset.from_parquet(str(exported)).num_rows == 4


def test_a_prompts_own_system_message_stays_first(tmp_path, tiny_engine):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"messages": [{"role": "system", "content": "Be a pirate."}, {"role": "user", "content": "hello"}]}],
    )
    seen = []
    chat = tiny_engine.chat
    tiny_engine.chat = lambda convs, params: seen.extend(convs) or chat(convs, params)
    run_critique(opts(tmp_path, prompts=str(src), revisions=1), tiny_engine)
    for conv in seen:
        assert conv[0] == {"role": "system", "content": "Be a pirate."}
        assert [m["role"] for m in conv].count("system") == 1
