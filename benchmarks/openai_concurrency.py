"""tokens/s of `cai critique` through the openai engine against a llama.cpp server, by concurrency.

Starts llama-cpp-python's OpenAI-compatible server on loopback with the embedded GGUF, then
runs the same greedy critique job at each concurrency, side by side in one process.
Baseline: concurrency 1 (one request at a time, like a plain loop over the API).

    python benchmarks/openai_concurrency.py --prompts 16 --concurrency 1 8
"""

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from constitutional.engines.loading import embedded_gguf
from constitutional.engines.openai_engine import OpenAIEngine
from constitutional.records import read_records
from constitutional.stages.critique import CritiqueOptions, run_critique


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf("smollm2-135m")),
         "--model_alias", "smollm2", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the llama.cpp server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--revisions", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    proc, url = start_server(args.threads)
    rates, outputs = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                out = Path(tmp) / f"c{c}.jsonl"
                engine = OpenAIEngine("smollm2", url, concurrency=c)
                opts = CritiqueOptions(
                    limit=args.prompts, revisions=args.revisions, max_new_tokens=args.max_new_tokens, out=out
                )
                start = time.perf_counter()
                run_critique(opts, engine)
                seconds = time.perf_counter() - start
                rates[c] = engine.tokens_generated / seconds
                outputs[c] = read_records(out)
                print(
                    f"concurrency {c:>2}: {engine.tokens_generated:,} tokens in {seconds:.1f}s = {rates[c]:.1f} tok/s"
                )
    finally:
        proc.terminate()
    base = args.concurrency[0]
    for c in args.concurrency[1:]:
        same = sum(a == b for a, b in zip(outputs[base], outputs[c]))
        print(
            f"ratio concurrency {c} / {base}: {rates[c] / rates[base]:.2f}x; identical records {same}/{len(outputs[c])}"
        )


if __name__ == "__main__":
    main()
