"""AI-feedback scoring throughput: `cai label`'s batched scoring against one question at a time.

Both score the same (pair, principle) multiple-choice questions with the same model, the
constitution's few-shot comparisons first. Batched: every question of the run in one
`choice_logprobs` call (length-sorted batches, the few-shot block computed once as a shared
prefix). Baseline: one call per question, no prefix reuse, as a per-request loop would do.

    python benchmarks/label_throughput.py [--pairs 16] [--principles 4]
"""

import argparse
import random
import time

import torch

from constitutional import constitution as constitution_lib
from constitutional.engines.loading import load_causal_lm
from constitutional.engines.transformers_engine import TransformersEngine
from constitutional.feedback import Comparison, few_shot_block, judge
from constitutional.prompts import load_prompts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--principles", type=int, default=4)
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--constitution", default="default")
    args = ap.parse_args()
    constitution = constitution_lib.load(args.constitution)
    rng = random.Random(0)
    helpful = load_prompts("helpful:train", args.pairs)
    # Throughput depends on token counts, not on answer quality: options of realistic length.
    items = [
        Comparison(
            p.messages,
            rng.choice(constitution.principles).comparison,
            f"Sure. {p.messages[-1]['content']} " * 3,
            "I'd rather not answer that, sorry.",
        )
        for p in helpful
        for _ in range(args.principles)
    ]
    prefix = few_shot_block(constitution.few_shot.comparison, cot=False)
    model, tokenizer = load_causal_lm(args.model)

    batched = TransformersEngine(model, tokenizer, batch_size=16)
    start = time.perf_counter()
    p_batched, _ = judge(batched, items, prefix)
    t_batched = time.perf_counter() - start

    single = TransformersEngine(model, tokenizer, batch_size=1, prefix_cache=False)
    start = time.perf_counter()
    p_single = [judge(single, [it], prefix)[0][0] for it in items]
    t_single = time.perf_counter() - start

    diff = max(abs(a - b) for a, b in zip(p_batched, p_single))
    n = len(items)
    print(
        f"model {args.model}: {args.pairs} pairs x {args.principles} principles = {n} scorings, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"batched + shared prefix: {t_batched:7.1f}s  {n / t_batched:6.2f} scorings/s")
    print(f"one at a time:           {t_single:7.1f}s  {n / t_single:6.2f} scorings/s")
    print(f"ratio: {t_single / t_batched:.2f}x; max |P(A) difference| = {diff:.2e}")


if __name__ == "__main__":
    main()
