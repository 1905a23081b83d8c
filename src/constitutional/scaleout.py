"""Where a generation stage's chunks run: in this process, or on a pool of Ray replicas.

Every generation stage (critique, sample, label, evaluate) is a loop of "take a chunk of
items, call the engine, get records and failures, append them". `process_chunks` runs that
loop here, or, with `RayOptions`, as a Ray Data pipeline: the items are a dataset, a pool of
``replicas`` actors each holds one engine (loaded once, with its own CPUs or GPUs), and the
results stream back to this process, which is the only writer. So the output is the same
records in the same file, appended and fsynced as chunks finish, and a rerun resumes by id.
Order of completion may differ from the local order; records are keyed by id, not position.
"""

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from constitutional.errors import UserError
from constitutional.records import RecordWriter, batched

#: work(engine, items) -> (records, [(id, reason), ...])
Work = Callable[[Any, list], tuple[list[dict], list[tuple[str, str]]]]


@dataclass(frozen=True)
class EngineSpec:
    """What a replica needs to build its own engine (picklable, unlike an engine)."""

    model: str
    batch_size: int = 16
    threads: int | None = None
    concurrency: int = 8

    def build(self):
        from constitutional.engines import load_engine

        return load_engine(self.model, self.batch_size, threads=self.threads, concurrency=self.concurrency)


@dataclass(frozen=True)
class RayOptions:
    address: str = "local"  # "local" starts Ray here; "auto" or ray://HOST:PORT joins a cluster
    replicas: int = 2
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0


class _Replica:
    """A Ray Data actor: one engine, reused for every chunk it is given."""

    def __init__(self, spec: EngineSpec, work: Work):
        self.engine, self.work = spec.build(), work

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [pickle.loads(b) for b in batch["item"]]
        return {"result": np.array([pickle.dumps(self.work(self.engine, items))], dtype=object)}


def _connect(opts: RayOptions) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'constitutional-ai[ray]'") from None
    if ray.is_initialized():
        return
    try:
        if opts.address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=opts.address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"--ray {opts.address}: could not connect to Ray ({str(e).splitlines()[0]})") from None


def process_chunks(
    items: list,
    chunk: int,
    work: Work,
    spec: EngineSpec,
    writer: RecordWriter,
    advance: Callable[[int], None],
    ray_opts: RayOptions | None = None,
    engine: Any = None,
) -> None:
    """Run ``work`` over ``items`` in chunks, writing records and failures as they finish."""
    if not items:
        return
    if ray_opts is None:
        engine = engine or spec.build()
        for part in batched(items, chunk):
            records, failures = work(engine, part)
            writer.write(records)
            writer.fail(failures)
            advance(len(part))
        return
    _connect(ray_opts)
    import ray.data

    replica_spec = EngineSpec(spec.model, spec.batch_size, max(1, int(ray_opts.cpus_per_replica)), spec.concurrency)
    ds = ray.data.from_items(
        [{"item": pickle.dumps(it)} for it in items], override_num_blocks=max(1, -(-len(items) // chunk))
    )
    results = ds.map_batches(
        _Replica,
        fn_constructor_args=(replica_spec, work),
        batch_size=chunk,
        concurrency=ray_opts.replicas,
        num_cpus=ray_opts.cpus_per_replica,
        num_gpus=ray_opts.gpus_per_replica or None,
        batch_format="numpy",
    )
    for row in results.iter_rows():
        records, failures = pickle.loads(row["result"])
        writer.write(records)
        writer.fail(failures)
        advance(len(records) + len(failures))
