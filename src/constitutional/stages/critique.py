"""SL-CAI data: answer, then critique and revise against sampled principles, N times.

Bai et al. 2022, section 3.1: a helpful model answers a red-team prompt; each round draws a
principle at random, the model critiques its own last answer against it and then rewrites
it. The constitution's worked examples go first, as earlier chat turns. Prompts advance
together in chunks, so each step of each round is one batched call to the engine, and a
chunk's records are appended (and fsynced) as soon as it is finished.
"""

import hashlib
import random
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from constitutional import constitution as constitution_lib
from constitutional.constitution import Constitution, Principle
from constitutional.engines import DEFAULT_MODEL, Engine, SamplingParams, chat_alive, load_engine
from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM, Conversation, with_system
from constitutional.progress import stage_progress
from constitutional.prompts import Prompt, load_prompts
from constitutional.records import RecordWriter, write_manifest
from constitutional.scaleout import EngineSpec, RayOptions, process_chunks


@dataclass
class CritiqueOptions:
    prompts: str = "red-team:train"
    constitution: str = "default"
    model: str = DEFAULT_MODEL
    out: Path = Path("sl.jsonl")
    revisions: int = 4
    critique: bool = True  # False: revise directly, without a critique (the paper compares both)
    principles: list[str] | None = None
    system: str | None = DEFAULT_SYSTEM
    few_shot: int | None = None  # how many of the constitution's worked examples; None = all
    batch_size: int = 16
    chunk: int = 64  # prompts advanced together and written as one unit
    max_new_tokens: int = 200
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    limit: int | None = None
    resume: bool = True
    threads: int | None = None
    concurrency: int = 8  # requests in flight, for openai: engines
    ray: RayOptions | None = None  # shard chunks over Ray replicas


def few_shot_turns(constitution: Constitution, k: int | None) -> Conversation:
    """The worked examples as chat turns: conversation, critique request, critique, revision."""
    turns: Conversation = []
    for ex in constitution.few_shot.critique_revision[:k]:
        turns += [m.model_dump() for m in ex.messages if m.role != "system"]
        turns += [
            {"role": "user", "content": ex.critique_request},
            {"role": "assistant", "content": ex.critique},
            {"role": "user", "content": ex.revision_request},
            {"role": "assistant", "content": ex.revision},
        ]
    return turns


def draw_principles(rec_id: str, pool: list[Principle], rounds: int, seed: int) -> list[Principle]:
    """Seeded per record, so a resumed or re-sharded run draws the same principles."""
    rng = random.Random(f"{seed}:{rec_id}")
    return [rng.choice(pool) for _ in range(rounds)]


def _split_system(messages: Conversation, default: str | None) -> tuple[str | None, Conversation]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return default, messages


def _run_chunk(
    engine: Engine, chunk: list[Prompt], constitution: Constitution, opts: CritiqueOptions
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Records for the chunk's prompts, and (id, reason) for those whose requests failed."""
    params = SamplingParams(opts.temperature, opts.top_p, opts.max_new_tokens, opts.seed)
    shots = few_shot_turns(constitution, opts.few_shot)
    prompts = [with_system(p.messages, opts.system) for p in chunk]
    # A prompt's own system message stays first, ahead of the worked examples.
    split = [_split_system(p, opts.system) for p in prompts]
    dead: dict[int, str] = {}
    initial = answers = chat_alive(engine, prompts, params, dead)
    drawn = [draw_principles(p.id, constitution.principles, opts.revisions, opts.seed) for p in chunk]
    rounds: list[list[dict]] = [[] for _ in chunk]
    for r in range(opts.revisions):
        # Each round sees the prompt and the latest answer only, after the worked examples.
        base = [
            with_system([*shots, *body, {"role": "assistant", "content": a}], system)
            for (system, body), a in zip(split, answers)
        ]
        principle = [d[r] for d in drawn]
        critiques: list[str | None] = [None] * len(chunk)
        if opts.critique:
            critiques = chat_alive(
                engine, [b + [{"role": "user", "content": pr.critique}] for b, pr in zip(base, principle)], params, dead
            )
            base = [
                b + [{"role": "user", "content": pr.critique}, {"role": "assistant", "content": c}]
                for b, pr, c in zip(base, principle, critiques)
            ]
        revised = chat_alive(
            engine, [b + [{"role": "user", "content": pr.revision}] for b, pr in zip(base, principle)], params, dead
        )
        # An empty revision would erase the answer; keep the previous one instead.
        answers = [new or old for new, old in zip(revised, answers)]
        for i in range(len(chunk)):
            rounds[i].append({"principle": principle[i].id, "critique": critiques[i], "revision": answers[i]})
    records = [
        {
            "id": p.id,
            "category": p.category,
            "prompt": prompt,
            "initial": first,
            "rounds": rnd,
            "messages": [*prompt, {"role": "assistant", "content": final}],
        }
        for n, (p, prompt, first, rnd, final) in enumerate(zip(chunk, prompts, initial, rounds, answers))
        if n not in dead
    ]
    return records, [(chunk[n].id, reason) for n, reason in dead.items()]


def run_critique(opts: CritiqueOptions, engine: Engine | None = None) -> dict:
    """Write ``opts.out``; returns counts and throughput for the caller to report."""
    if opts.revisions < 0:
        raise UserError(f"--revisions must be 0 or more, got {opts.revisions}")
    if opts.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {opts.batch_size}")
    constitution = constitution_lib.load(opts.constitution)
    if opts.principles:
        constitution = constitution.subset(opts.principles)
    prompts = load_prompts(opts.prompts, opts.limit)
    with RecordWriter(opts.out, resume=opts.resume) as writer:
        todo = [p for p in prompts if p.id not in writer.done]
        manifest = {
            "stage": "critique",
            "prompts": opts.prompts,
            "prompt_ids": _ids_hash(prompts),
            "model": opts.model,
            "constitution": {"ref": opts.constitution, "name": constitution.name, "hash": constitution.fingerprint()},
            "params": asdict(opts),
        }
        write_manifest(opts.out, **manifest, status="running", done=len(prompts) - len(todo), total=len(prompts))
        if todo and opts.ray is None:
            engine = engine or load_engine(
                opts.model, opts.batch_size, threads=opts.threads, concurrency=opts.concurrency
            )
        start, tokens0 = time.perf_counter(), engine.tokens_generated if engine else 0
        with stage_progress(lambda: engine.tokens_generated if engine else 0) as bar:
            task = bar.add_task("critique", total=len(prompts), completed=len(prompts) - len(todo))
            process_chunks(
                todo,
                opts.chunk,
                partial(_run_chunk, constitution=constitution, opts=opts),
                EngineSpec(opts.model, opts.batch_size, opts.threads, opts.concurrency),
                writer,
                lambda n: bar.advance(task, n),
                opts.ray,
                engine,
            )
        elapsed = time.perf_counter() - start
        tokens = (engine.tokens_generated - tokens0) if engine else 0
        stats = {
            "records": len(writer.done),
            "new": len(todo) - len(writer.failed_now),
            "failed": len(writer.failed_now),
            "seconds": elapsed,
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed if elapsed else 0.0,
        }
        status = "incomplete" if writer.failed_now else "complete"
        write_manifest(opts.out, **manifest, status=status, done=len(writer.done), total=len(prompts), stats=stats)
    return stats


def _ids_hash(prompts: list[Prompt]) -> str:
    return hashlib.sha256("\n".join(p.id for p in prompts).encode()).hexdigest()[:16]
