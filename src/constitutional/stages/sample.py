"""Response pairs for AI feedback: n samples per prompt from the policy (Bai et al. 2022, 4.1).

The SL-CAI model answers each prompt ``n`` times at temperature 1 by default; the feedback
model later says which answer better follows a principle.
"""

import random
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from constitutional.engines import DEFAULT_MODEL, Engine, SamplingParams, chat_alive, load_engine
from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM, with_system
from constitutional.progress import stage_progress
from constitutional.prompts import load_prompts
from constitutional.records import RecordWriter, write_manifest
from constitutional.scaleout import EngineSpec, RayOptions, process_chunks


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
    concurrency: int = 8  # requests in flight, for openai: engines
    ray: RayOptions | None = None  # shard chunks over Ray replicas


def sample_chunk(engine: Engine, chunk: list, opts: SampleOptions) -> tuple[list[dict], list[tuple[str, str]]]:
    """n answers for each prompt of a chunk; (id, reason) for prompts whose requests failed."""
    convs = [with_system(p.messages, opts.system) for p in chunk]
    dead: dict[int, str] = {}
    # A distinct seed per draw and per chunk (fixed by its first prompt, so sharding keeps it).
    base = random.Random(f"{opts.seed}:{chunk[0].id}").randrange(2**31)
    draws = [
        chat_alive(
            engine, convs, SamplingParams(opts.temperature, opts.top_p, opts.max_new_tokens, seed=base + k), dead
        )
        for k in range(opts.n)
    ]
    records = [
        {"id": p.id, "category": p.category, "prompt": conv, "responses": [d[i] for d in draws]}
        for i, (p, conv) in enumerate(zip(chunk, convs))
        if i not in dead
    ]
    return records, [(chunk[i].id, reason) for i, reason in dead.items()]


def run_sample(opts: SampleOptions, engine: Engine | None = None) -> dict:
    if opts.n < 2:
        raise UserError(f"--n must be at least 2 to make pairs, got {opts.n}")
    prompts = load_prompts(opts.prompts, opts.limit)
    params = asdict(opts)
    with RecordWriter(opts.out, resume=opts.resume) as writer:
        todo = [p for p in prompts if p.id not in writer.done]
        write_manifest(opts.out, stage="sample", model=opts.model, params=params, status="running")
        if todo and opts.ray is None:
            engine = engine or load_engine(
                opts.model, opts.batch_size, threads=opts.threads, concurrency=opts.concurrency
            )
        start, tokens0 = time.perf_counter(), engine.tokens_generated if engine else 0
        with stage_progress(lambda: engine.tokens_generated if engine else 0) as bar:
            task = bar.add_task("sample", total=len(prompts), completed=len(prompts) - len(todo))
            process_chunks(
                todo,
                opts.chunk,
                partial(sample_chunk, opts=opts),
                EngineSpec(opts.model, opts.batch_size, opts.threads, opts.concurrency),
                writer,
                lambda n: bar.advance(task, n),
                opts.ray,
                engine,
            )
        seconds = time.perf_counter() - start
        tokens = engine.tokens_generated - tokens0 if engine else 0
        failed = len(writer.failed_now)
        stats = {
            "records": len(writer.done),
            "new": len(todo) - failed,
            "failed": failed,
            "seconds": seconds,
            "tokens": tokens,
        }
        status = "incomplete" if failed else "complete"
        write_manifest(opts.out, stage="sample", model=opts.model, params=params, status=status, stats=stats)
    return stats
