"""The openai engine against a real llama.cpp server on loopback, through injected faults."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import write_jsonl
from fault_proxy import FaultProxy

from constitutional.engines import Failure, SamplingParams
from constitutional.engines.loading import embedded_gguf
from constitutional.engines.openai_engine import OpenAIEngine
from constitutional.feedback import ANSWER, letter_probability
from constitutional.records import read_records
from constitutional.stages.critique import CritiqueOptions, run_critique

pytestmark = pytest.mark.slow
MODEL = "smollm2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server, serving the embedded GGUF."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as sink:  # a file, not a pipe: llama.cpp logs enough to fill a pipe and block
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(embedded_gguf("smollm2-135m")), "--model_alias", MODEL,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
                "--logits_all", "true",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"llama.cpp server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def prompts(tmp_path, n=6):
    return write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"Name one fact about the number {i}."} for i in range(n)])


def critique(tmp_path, engine, out, **kw):
    opts = CritiqueOptions(
        prompts=str(prompts(tmp_path)), out=out, revisions=1, few_shot=1, max_new_tokens=24, batch_size=4, **kw
    )
    return run_critique(opts, engine)


def test_chat_and_choice_logprobs_against_the_server(server):
    engine = OpenAIEngine(MODEL, server, concurrency=2)
    a, b = engine.chat([[{"role": "user", "content": "Say hello."}]] * 2, SamplingParams(max_new_tokens=16))
    assert isinstance(a, str) and a and a == b  # greedy is deterministic
    assert engine.tokens_generated > 0
    prompt = "Question: Is the sky blue or green on a clear day?\nOptions:\n(A) blue\n(B) green\n" + ANSWER
    (scores,) = engine.choice_logprobs([prompt], ["A", "B"])
    assert all(s < 0 for s in scores)
    p = letter_probability(*scores)
    assert 0 < p < 1
    # A multi-token choice is scored from the echoed prompt; it must be less likely than its first token.
    (two,) = engine.choice_logprobs([prompt], ["A) blue"])
    assert two[0] <= scores[0] + 1e-4


def test_run_completes_through_every_fault_and_matches_a_clean_run(tmp_path, server):
    # One request in flight, so the server sees the same sequence of prompts as the clean run:
    # llama.cpp reuses the previous request's KV prefix, and a different order can flip a
    # near-tie in greedy decoding (we measured 7 of 8 records identical at concurrency 8).
    clean = critique(tmp_path, OpenAIEngine(MODEL, server, concurrency=1), tmp_path / "clean.jsonl")
    schedule = ["429", None, "500", None, "hang", None, "drop", None, None]
    with FaultProxy(server.removesuffix("/v1"), schedule, hang_s=20) as proxy:
        engine = OpenAIEngine(MODEL, proxy.url, concurrency=1, timeout=10, max_retries=8)
        stats = critique(tmp_path, engine, tmp_path / "faulty.jsonl")
    assert stats["failed"] == 0 and clean["records"] == stats["records"] == 6
    got = {r["id"]: r for r in read_records(tmp_path / "faulty.jsonl")}
    want = {r["id"]: r for r in read_records(tmp_path / "clean.jsonl")}
    assert got == want  # nothing lost, nothing duplicated, identical to the clean run
    assert set(proxy.faults) == {"429", "500", "hang", "drop"}
    # 6 prompts x (answer, critique, revision): each reached the server exactly once.
    assert proxy.forwarded == 18
    retries = proxy.requests - proxy.forwarded
    print(f"faults injected {proxy.faults}, retries {retries}, records lost 0")


def test_a_request_that_keeps_failing_is_logged_and_only_it_is_retried(tmp_path, server):
    out = tmp_path / "sl.jsonl"
    with FaultProxy(server.removesuffix("/v1"), [None], fail_if="number 3.") as proxy:
        engine = OpenAIEngine(MODEL, proxy.url, concurrency=4, max_retries=1)
        stats = critique(tmp_path, engine, out)
    assert stats["failed"] == 1 and stats["records"] == 5
    (failed,) = [json.loads(line) for line in out.with_name("sl.failed.jsonl").open()]
    assert "HTTP 500" in failed["reason"]
    written = out.read_bytes()
    with FaultProxy(server.removesuffix("/v1"), [None]) as proxy:
        stats = critique(tmp_path, OpenAIEngine(MODEL, proxy.url), out)
    assert stats["failed"] == 0 and stats["records"] == 6 and stats["new"] == 1
    assert out.read_bytes().startswith(written)  # the five records already written are untouched
    assert proxy.requests == 3  # initial answer, critique, revision: for the one failed prompt only


def test_failure_comes_back_as_a_value_not_an_exception():
    engine = OpenAIEngine(MODEL, "http://127.0.0.1:9/v1", max_retries=0, timeout=1)
    (out,) = engine.chat([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=4))
    assert isinstance(out, Failure) and "no answer from http://127.0.0.1:9/v1" in out.reason


def test_api_key_comes_from_the_environment_and_never_shows(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-secret-123")
    engine = OpenAIEngine(MODEL, "http://127.0.0.1:9/v1", max_retries=0, timeout=1)
    (out,) = engine.chat([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=4))
    assert "sk-planted" not in repr(engine) and "sk-planted" not in out.reason
    assert "sk-planted" not in json.dumps(vars(engine), default=str)
