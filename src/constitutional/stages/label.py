"""AI preference labels: the feedback model compares two answers against sampled principles.

For each pair, K comparison principles are drawn (seeded per record) and each becomes one
multiple-choice question (`constitutional.feedback`); the votes' P(first response better)
are averaged into the soft label ``p_chosen`` (Bai et al. 2022, 4.1). ``debias`` also asks
every question with the options swapped and averages both orders, which cancels a
feedback model's preference for one letter. The output is TRL's conversational preference
format, so DPOTrainer and RewardTrainer read it as is.
"""

import random
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from constitutional import constitution as constitution_lib
from constitutional.engines import DEFAULT_MODEL, Engine, Failure, load_engine
from constitutional.errors import UserError
from constitutional.feedback import Comparison, content_free_prior, few_shot_block, judge
from constitutional.progress import stage_progress
from constitutional.records import RecordWriter, read_records, write_manifest
from constitutional.scaleout import EngineSpec, RayOptions, process_chunks
from constitutional.stages.gate import GateOptions, run_gate


@dataclass
class LabelOptions:
    pairs: Path = Path("pairs.jsonl")
    constitution: str = "default"
    model: str = DEFAULT_MODEL
    out: Path = Path("prefs.jsonl")
    principles: int = 4
    debias: bool = False
    calibrate: bool = False
    cot: bool = False
    clamp: tuple[float, float] = (0.4, 0.6)
    few_shot: int | None = None
    batch_size: int = 16
    chunk: int = 64
    max_new_tokens: int = 200
    seed: int = 0
    limit: int | None = None
    resume: bool = True
    threads: int | None = None
    concurrency: int = 8  # requests in flight, for openai: engines
    ray: RayOptions | None = None  # shard chunks over Ray replicas
    gate: int = 0  # first score this many HHH comparisons, and warn if near chance (0: no gate)
    min_accuracy: float = 0.5


def label_records(
    engine: Engine, records: list[dict], opts: LabelOptions, prefix: str, pool: list, prior: dict | None = None
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Label a batch of pair records; every (pair, principle, order) question goes in one call.

    Returns the labelled records and (id, reason) for pairs whose feedback requests failed."""
    items, where = [], []
    for n, rec in enumerate(records):
        rng = random.Random(f"{opts.seed}:{rec['id']}")
        first, second = rec["responses"][:2]
        for principle in [rng.choice(pool) for _ in range(opts.principles)]:
            orders = ("ab", "ba") if opts.debias else ("ab",)
            for order in orders:
                a, b = (first, second) if order == "ab" else (second, first)
                items.append(Comparison(rec["prompt"], principle.comparison, a, b))
                where.append((n, principle.id, order))
    probs, reasoning = judge(engine, items, prefix, opts.cot, opts.clamp, opts.max_new_tokens, prior)
    votes: list[list[dict]] = [[] for _ in records]
    failed: dict[int, str] = {}
    for (n, pid, order), p_a, why in zip(where, probs, reasoning):
        if isinstance(p_a, Failure):
            failed[n] = p_a.reason
            continue
        # p_first: probability that the record's first response is the better one.
        p_first = p_a if order == "ab" else 1.0 - p_a
        votes[n].append({"principle": pid, "p_a": p_a, "p_first": p_first, "order": order, "cot": why})
    out = []
    for n, (rec, vs) in enumerate(zip(records, votes)):
        if n in failed:
            continue
        p_first = sum(v["p_first"] for v in vs) / len(vs)
        first, second = rec["responses"][:2]
        chosen, rejected, p_chosen = (first, second, p_first) if p_first >= 0.5 else (second, first, 1 - p_first)
        out.append(
            {
                "id": rec["id"],
                "prompt": rec["prompt"],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "p_chosen": p_chosen,
                "votes": vs,
            }
        )
    return out, [(records[n]["id"], reason) for n, reason in failed.items()]


def order_disagreement(records: list[dict]) -> float | None:
    """Share of (pair, principle) questions whose two orders prefer different responses."""
    split = total = 0
    for rec in records:
        by_key: dict[tuple[int, str], list[float]] = {}
        for i, v in enumerate(rec["votes"]):
            by_key.setdefault((i // 2, v["principle"]), []).append(v["p_first"])
        for ps in by_key.values():
            if len(ps) == 2:
                total += 1
                split += (ps[0] >= 0.5) != (ps[1] >= 0.5)
    return split / total if total else None


def run_label(opts: LabelOptions, engine: Engine | None = None) -> dict:
    if opts.principles < 1:
        raise UserError(f"--principles must be at least 1, got {opts.principles}")
    lo, hi = opts.clamp
    if not 0.0 <= lo <= hi <= 1.0:
        raise UserError(f"--clamp must be LO,HI with 0 <= LO <= HI <= 1, got {lo},{hi}")
    if opts.calibrate and opts.cot:
        raise UserError("--calibrate and --cot do not combine: the prior is measured without reasoning")
    constitution = constitution_lib.load(opts.constitution)
    pairs = read_records(opts.pairs)[: opts.limit]
    for n, rec in enumerate(pairs, 1):
        if len(rec.get("responses", [])) < 2 or "prompt" not in rec:
            raise UserError(f"{opts.pairs}: record {n}: needs 'prompt' and two 'responses'")
    prefix = few_shot_block(constitution.few_shot.comparison[: opts.few_shot], opts.cot)
    params = asdict(opts)
    info = {"stage": "label", "model": opts.model, "constitution": constitution.fingerprint(), "params": params}
    with RecordWriter(opts.out, resume=opts.resume) as writer:
        todo = [r for r in pairs if r["id"] not in writer.done]
        write_manifest(opts.out, **info, status="running")
        if (todo and opts.ray is None) or opts.gate or (todo and opts.calibrate):
            engine = engine or load_engine(
                opts.model, opts.batch_size, threads=opts.threads, concurrency=opts.concurrency
            )
        gate = None
        if opts.gate:
            gate = run_gate(
                GateOptions(
                    model=opts.model,
                    constitution=opts.constitution,
                    n=opts.gate,
                    min_accuracy=opts.min_accuracy,
                    debias=opts.debias,
                    calibrate=opts.calibrate,
                    few_shot=opts.few_shot,
                    cot=opts.cot,
                    seed=opts.seed,
                ),
                engine,
            )
        prior = None
        if opts.calibrate and todo:
            prior = content_free_prior(engine, [p.comparison for p in constitution.principles], prefix)
        with stage_progress() as bar:
            task = bar.add_task("label", total=len(pairs), completed=len(pairs) - len(todo))
            process_chunks(
                todo,
                opts.chunk,
                partial(label_records, opts=opts, prefix=prefix, pool=constitution.principles, prior=prior),
                EngineSpec(opts.model, opts.batch_size, opts.threads, opts.concurrency),
                writer,
                lambda n: bar.advance(task, n),
                opts.ray,
                engine,
            )
    labelled = read_records(opts.out)
    stats = {
        "records": len(labelled),
        "new": len(todo) - len(writer.failed_now),
        "failed": len(writer.failed_now),
        "order_disagreement": order_disagreement(labelled),
        "gate": gate,
        "mean_prior_a": sum(prior.values()) / len(prior) if prior else None,
    }
    write_manifest(opts.out, **info, status="incomplete" if writer.failed_now else "complete", stats=stats)
    return stats
