"""The body of scripts/gpu_check.sh: build a random model, then critique and label with vLLM."""

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from constitutional.engines import load_engine
from constitutional.engines.loading import embedded_checkpoint
from constitutional.records import read_records, write_atomic
from constitutional.stages.critique import CritiqueOptions, run_critique
from constitutional.stages.label import LabelOptions, run_label


def build_model(out: Path) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint("smollm2-135m"))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16",
    )
    path = out / "random-llama"
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def main(out: Path) -> None:
    model = build_model(out)
    start = time.perf_counter()
    engine = load_engine(f"vllm:{model}?mem=0.5")
    print(f"vLLM engine up in {time.perf_counter() - start:.0f}s")
    sl = out / "sl.jsonl"
    stats = run_critique(
        CritiqueOptions(limit=128, revisions=2, max_new_tokens=128, out=sl, resume=False, model=f"vllm:{model}"),
        engine,
    )
    print(f"critique: {stats['records']} records, {stats['tokens']:,} tokens, {stats['tokens_per_s']:.0f} tok/s")
    pairs = out / "pairs.jsonl"
    rows = [
        {"id": r["id"], "prompt": r["prompt"], "responses": [r["initial"], r["rounds"][-1]["revision"]]}
        for r in read_records(sl)
    ]
    write_atomic(pairs, "".join(json.dumps(r) + "\n" for r in rows))
    start = time.perf_counter()
    lab = run_label(LabelOptions(pairs=pairs, out=out / "prefs.jsonl", principles=4, debias=True, resume=False), engine)
    seconds = time.perf_counter() - start
    questions = lab["records"] * 8
    print(f"label: {questions} questions in {seconds:.1f}s = {questions / seconds:.0f} questions/s")
    print("GPU check passed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
