"""A judge whose server gives no log-probs: --cot reads the letter, and garbage abstains."""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import write_jsonl

from constitutional.engines import NoLogprobs
from constitutional.engines.openai_engine import OpenAIEngine
from constitutional.feedback import text_vote
from constitutional.records import read_records
from constitutional.stages.label import LabelOptions, run_label

ANSWERS = {
    "q0": "Both are fine... The answer is: (B)",
    "q1": "",
    "q2": "zzz %%% no letter here",
    "q3": "(A) is kinder.",
}


class _ChatOnly(BaseHTTPRequestHandler):
    """Like a hosted chat API: completions come back without log-probs."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path.endswith("/chat/completions"):
            text = next((a for q, a in ANSWERS.items() if q in json.dumps(body)), "")
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
        else:
            choice = {"index": 0, "text": "A", "logprobs": None, "finish_reason": "length"}
            reply = {"id": "x", "object": "text_completion", "created": 0, "model": "m", "choices": [choice]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up on the rest
            self.wfile.write(data)


@pytest.fixture
def chat_only():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_text_vote_reads_the_last_stated_letter():
    assert text_vote("(A) looks good but the answer is: (B)") == "B"
    assert text_vote("The answer is A") == "A"
    assert text_vote("") is None and text_vote("no idea") is None and text_vote(None) is None


def test_cot_labels_from_text_and_garbage_abstains(tmp_path, chat_only):
    rows = [{"id": q, "prompt": [{"role": "user", "content": q}], "responses": ["one", "two"]} for q in ANSWERS]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    engine = OpenAIEngine("m", chat_only, max_retries=0)
    opts = LabelOptions(pairs=pairs, out=tmp_path / "prefs.jsonl", principles=1, cot=True, few_shot=0, gate=0)
    stats = run_label(opts, engine)
    assert stats["records"] == 4 and stats["failed"] == 0
    p_a = {r["id"]: r["votes"][0]["p_a"] for r in read_records(opts.out)}
    assert p_a == {"q0": 0.4, "q1": 0.5, "q2": 0.5, "q3": 0.6}  # clamped to 0.4-0.6; no letter: 0.5
    with pytest.raises(NoLogprobs, match="--cot"):
        run_label(LabelOptions(pairs=pairs, out=tmp_path / "b.jsonl", few_shot=0, gate=0), engine)
