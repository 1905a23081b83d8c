"""A planted API key never reaches any file a run writes, nor its error output."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import write_jsonl

from constitutional.secrets import redact

KEY = "sk-planted-0123456789abcdef"


class _Leaky(BaseHTTPRequestHandler):
    """A server that quotes the caller's key back in its error, as some do."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def leaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Leaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_redact_replaces_credential_values(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", KEY)
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijkl")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to be a secret: left alone
    assert redact(f"key={KEY}, token=hf_abcdefghijkl, abc") == "key=[redacted], token=[redacted], abc"


def test_a_planted_key_is_in_no_output_file_and_no_message(tmp_path, leaky_server):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"question {i}"} for i in range(3)])
    out = tmp_path / "run" / "sl.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    args = [sys.executable, "-m", "constitutional", "critique", "--model", f"openai:m@{leaky_server}"]
    args += ["--prompts", str(prompts), "--out", str(out), "--revisions", "1"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr  # failures are recorded, the run itself completes
    failed = [json.loads(line) for line in out.with_name("sl.failed.jsonl").open()]
    assert len(failed) == 3 and all("HTTP 401" in f["reason"] and "[redacted]" in f["reason"] for f in failed)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert KEY not in path.read_text(errors="replace"), path
    assert KEY not in r.stdout + r.stderr
