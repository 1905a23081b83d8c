"""Critique-stage throughput: `cai critique` as built against LangChain's sequential pattern.

LangChain's ConstitutionalChain runs one conversation at a time with one model call per
step (answer, then critique, revision, critique, revision...). The baseline here does exactly
that with the same model, prompts, principles, few-shot examples and sampling settings:
batch size 1, no prefix reuse. Both runs are greedy, so they should also agree on the text.

    python benchmarks/critique_throughput.py [--prompts 32] [--revisions 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from constitutional import constitution as constitution_lib
from constitutional.engines.loading import load_causal_lm
from constitutional.engines.transformers_engine import TransformersEngine
from constitutional.prompts import load_prompts
from constitutional.records import read_records
from constitutional.stages.critique import CritiqueOptions, _run_chunk, run_critique


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--revisions", type=int, default=2)
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm(args.model)

    with tempfile.TemporaryDirectory() as tmp:
        opts = CritiqueOptions(
            model=args.model, out=Path(tmp) / "sl.jsonl", revisions=args.revisions, limit=args.prompts
        )
        built = TransformersEngine(model, tokenizer, batch_size=opts.batch_size)
        stats = run_critique(opts, built)
        batched_records = read_records(opts.out)

    sequential = TransformersEngine(model, tokenizer, batch_size=1, prefix_cache=False)
    constitution = constitution_lib.load(opts.constitution)
    start = time.perf_counter()
    sequential_records = [
        _run_chunk(sequential, [p], constitution, opts)[0][0] for p in load_prompts(opts.prompts, args.prompts)
    ]
    seq_seconds = time.perf_counter() - start

    same = sum(a["messages"] == b["messages"] for a, b in zip(batched_records, sequential_records))
    rows = [
        ("cai critique (batched, prefix)", stats["tokens"], stats["seconds"]),
        ("sequential (ConstitutionalChain)", sequential.tokens_generated, seq_seconds),
    ]
    print(f"model {args.model}, {args.prompts} prompts x {args.revisions} revisions, {args.threads} threads")
    print(f"{'run':<34}{'tokens':>8}{'seconds':>10}{'tok/s':>9}")
    for name, tokens, seconds in rows:
        print(f"{name:<34}{tokens:>8}{seconds:>10.1f}{tokens / seconds:>9.1f}")
    speedup = (rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2])
    print(f"ratio (tok/s, built / sequential): {speedup:.2f}x")
    print(f"identical final revisions: {same}/{len(batched_records)}")


if __name__ == "__main__":
    main()
