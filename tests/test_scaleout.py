"""Ray scale-out: the same records as one process, from a pool of replicas on a local Ray."""

import time

import pytest
from conftest import write_jsonl

from constitutional.records import read_records
from constitutional.scaleout import RayOptions
from constitutional.stages.critique import CritiqueOptions, run_critique
from constitutional.stages.label import LabelOptions, run_label

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_replicas_give_the_single_process_records(tmp_path, tiny_model_dir, local_ray):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"Tell me about item {i}."} for i in range(8)])

    def opts(out, fleet):
        return CritiqueOptions(
            prompts=str(prompts), model=str(tiny_model_dir), out=out, revisions=1, few_shot=1,
            max_new_tokens=8, batch_size=2, chunk=2, threads=1, ray=fleet,
        )  # fmt: skip

    start = time.perf_counter()
    run_critique(opts(tmp_path / "one.jsonl", None))
    single = time.perf_counter() - start
    start = time.perf_counter()
    stats = run_critique(opts(tmp_path / "ray.jsonl", RayOptions("local", replicas=2, cpus_per_replica=1)))
    sharded = time.perf_counter() - start
    print(f"critique, 8 prompts: one process {single:.1f}s, 2 Ray replicas {sharded:.1f}s")
    one = {r["id"]: r for r in read_records(tmp_path / "one.jsonl")}
    many = {r["id"]: r for r in read_records(tmp_path / "ray.jsonl")}
    assert stats["records"] == 8 and many == one

    # label shards the same way, and a rerun over Ray finds nothing left to do.
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"id": r["id"], "prompt": r["prompt"], "responses": [r["initial"], r["rounds"][0]["revision"]]}
            for r in one.values()
        ],
    )
    fleet = RayOptions("local", replicas=2)
    local = run_label(LabelOptions(pairs=pairs, model=str(tiny_model_dir), out=tmp_path / "a.jsonl", few_shot=0))
    remote = run_label(
        LabelOptions(pairs=pairs, model=str(tiny_model_dir), out=tmp_path / "b.jsonl", few_shot=0, ray=fleet)
    )
    assert local["records"] == remote["records"] == 8
    a = {r["id"]: r["p_chosen"] for r in read_records(tmp_path / "a.jsonl")}
    b = {r["id"]: r["p_chosen"] for r in read_records(tmp_path / "b.jsonl")}
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)
    again = run_label(LabelOptions(pairs=pairs, model="/gone", out=tmp_path / "b.jsonl", few_shot=0, ray=fleet))
    assert again["new"] == 0
