import math

import pytest
import torch
from conftest import write_jsonl

from constitutional.records import read_records
from constitutional.stages.sample import SampleOptions, run_sample
from constitutional.stages.sft import SFTOptions, mixed_rows, run_sft


def sl_file(tmp_path, name, n, text):
    rows = [
        {
            "id": f"{name}{i}",
            "messages": [
                {"role": "user", "content": f"{text} {i}?"},
                {"role": "assistant", "content": f"An answer about {text} {i}."},
            ],
        }
        for i in range(n)
    ]
    return write_jsonl(tmp_path / f"{name}.jsonl", rows)


def test_mix_ratio_sets_the_share_of_helpful_rows(tmp_path):
    opts = SFTOptions(
        data=sl_file(tmp_path, "sl", 6, "harm"), mix=sl_file(tmp_path, "help", 20, "help"), mix_ratio=0.25
    )
    rows = mixed_rows(opts)
    helpful = [r for r in rows if "help" in r["prompt"][0]["content"]]
    assert len(rows) == 8 and len(helpful) == 2
    assert rows[0]["completion"][0]["role"] == "assistant"


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_trains_and_saves_a_loadable_model(tmp_path, tiny_model_dir, lora):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sl-cai"
    stats = run_sft(
        SFTOptions(
            data=sl_file(tmp_path, "sl", 4, "topic"),
            model=str(tiny_model_dir),
            out=out,
            batch_size=2,
            lr=1e-3,
            lora=lora,
        )
    )
    assert stats["steps"] == 2 and math.isfinite(stats["train_loss"])
    assert (out / "loss_curve.png").exists() and (out / "training_log.csv").exists()
    trained = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), base.state_dict().values())]
    assert any(changed)
    assert not any("lora" in k for k in trained.state_dict()), "LoRA is merged into a plain checkpoint"


def test_sample_draws_n_answers_and_resumes(tmp_path, tiny_engine):
    opts = SampleOptions(out=tmp_path / "pairs.jsonl", n=3, limit=3, max_new_tokens=8)
    run_sample(opts, tiny_engine)
    records = read_records(opts.out)
    assert len(records) == 3 and all(len(r["responses"]) == 3 for r in records)
    assert any(len(set(r["responses"])) > 1 for r in records), "temperature 1 gives different answers"
    opts.limit = 5
    assert run_sample(opts, tiny_engine)["new"] == 2
    assert len(read_records(opts.out)) == 5
