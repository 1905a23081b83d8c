import csv
import math

import pytest
import torch
from conftest import write_jsonl
from safetensors.torch import load_file

from constitutional.errors import UserError
from constitutional.stages.reward import PreferenceScorer
from constitutional.stages.rl import PMReward, RLOptions, run_rl


def prompts_file(tmp_path, n=6):
    return write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"Tell me about topic {i}."} for i in range(n)])


def weights(path):
    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize("algo", ["rloo", "grpo", "ppo"])
def test_each_algorithm_takes_steps_logs_and_saves_a_changed_model(tmp_path, tiny_model_dir, tiny_pm_dir, algo):
    out = tmp_path / algo
    opts = RLOptions(
        policy=str(tiny_model_dir),
        reward_model=str(tiny_pm_dir),
        out=out,
        algo=algo,
        prompts=str(prompts_file(tmp_path)),
        helpful_prompts=None,
        steps=2,
        prompts_per_step=2,
        generations=2,
        max_new_tokens=8,
        lr=1e-3,
        ppo_epochs=2,
        threads=2,
    )
    stats = run_rl(opts)
    rows = list(csv.DictReader((out / "rl_log.csv").open()))
    assert len(rows) == 2 and stats["steps"] == 2
    for r in rows:
        for key in ("reward", "kl", "response_length"):
            assert math.isfinite(float(r[key])), (key, r)
        assert 0 < float(r["response_length"]) <= 8
        loss_key = "policy_loss" if algo == "ppo" else "loss"
        assert math.isfinite(float(r[loss_key]))
    assert (out / "rl_curves.png").stat().st_size > 0
    before, after = weights(tiny_model_dir), weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no weight moved"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)


def test_pm_reward_scores_prompt_and_answer_together(tiny_pm_dir):
    reward = PMReward(PreferenceScorer.load(str(tiny_pm_dir)))
    prompt = [{"role": "user", "content": "hi"}]
    a = reward(
        [prompt, prompt], [[{"role": "assistant", "content": "hello"}], [{"role": "assistant", "content": "go"}]]
    )
    direct = reward.scorer.score([prompt + [{"role": "assistant", "content": "hello"}]])
    assert a[0] == pytest.approx(direct[0], abs=1e-5) and a[0] != a[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algo": "a2c"}, "--algo must be one of"),
        ({"kl_coef": 0.0}, "--kl-coef must be above 0"),
        ({"generations": 1}, "--generations must be at least 2"),
    ],
)
def test_bad_options_are_refused_before_any_work(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        run_rl(RLOptions(out=tmp_path / "x", policy="/nonexistent", **change))
