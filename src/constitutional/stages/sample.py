"""Response pairs for AI feedback: n samples per prompt from the policy (Bai et al. 2022, 4.1).

The SL-CAI model answers each prompt ``n`` times at temperature 1 by default; the feedback
model later says which answer better follows a principle.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from constitutional.engines import DEFAULT_MODEL, Engine, SamplingParams, load_engine
from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM, with_system
from constitutional.progress import stage_progress
from constitutional.prompts import load_prompts
from constitutional.records import RecordWriter, batched, write_manifest


@dataclass
class SampleOptions:
    prompts: str = "red-team:train"
    model: str = DEFAULT_MODEL
    out: Path = Path("pairs.jsonl")
    n: int = 2
    system: str | None = DEFAULT_SYSTEM
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    batch_size: int = 16
    chunk: int = 64
    seed: int = 0
    limit: int | None = None
    resume: bool = True
    threads: int | None = None


def run_sample(opts: SampleOptions, engine: Engine | None = None) -> dict:
    if opts.n < 2:
        raise UserError(f"--n must be at least 2 to make pairs, got {opts.n}")
    prompts = load_prompts(opts.prompts, opts.limit)
    params = asdict(opts)
    with RecordWriter(opts.out, resume=opts.resume) as writer:
        todo = [p for p in prompts if p.id not in writer.done]
        write_manifest(opts.out, stage="sample", model=opts.model, params=params, status="running")
        if todo:
            engine = engine or load_engine(opts.model, opts.batch_size, threads=opts.threads)
        start, tokens0 = time.perf_counter(), engine.tokens_generated if engine else 0
        with stage_progress(lambda: engine.tokens_generated if engine else 0) as bar:
            task = bar.add_task("sample", total=len(prompts), completed=len(prompts) - len(todo))
            for n_chunk, chunk in enumerate(batched(todo, opts.chunk)):
                convs = [with_system(p.messages, opts.system) for p in chunk]
                # A distinct seed per draw and chunk, so the n answers differ when sampling.
                draws = [
                    engine.chat(
                        convs,
                        SamplingParams(
                            opts.temperature, opts.top_p, opts.max_new_tokens, seed=opts.seed + 1000 * n_chunk + k
                        ),
                    )
                    for k in range(opts.n)
                ]
                writer.write(
                    {"id": p.id, "category": p.category, "prompt": conv, "responses": [d[i] for d in draws]}
                    for i, (p, conv) in enumerate(zip(chunk, convs))
                )
                bar.advance(task, len(chunk))
        seconds = time.perf_counter() - start
        tokens = engine.tokens_generated - tokens0 if engine else 0
        stats = {"records": len(writer.done), "new": len(todo), "seconds": seconds, "tokens": tokens}
        write_manifest(opts.out, stage="sample", model=opts.model, params=params, status="complete", stats=stats)
    return stats
