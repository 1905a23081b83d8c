"""RL-CAI: train the SL-CAI policy against the preference model, with a KL penalty.

Bai et al. 2022 (section 4) use PPO with the PM as reward and a KL penalty to the SL-CAI
model. Three algorithms share one prompt set and one reward function (`PMReward`):

- ``rloo`` (default): `trl.RLOOTrainer`, which folds a sequence-level KL into the reward;
- ``grpo``: `trl.GRPOTrainer` with ``beta > 0`` (TRL's default of 0 means no KL at all);
- ``ppo``: our compact PPO (`constitutional.ppo`), since TRL 1.16 removed its PPOTrainer.

Every algorithm writes ``rl_log.csv`` (reward, KL and answer length per step) and
``rl_curves.png``, and saves a plain checkpoint that every engine loads.
"""

import csv
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM, with_system
from constitutional.progress import stage_progress
from constitutional.prompts import load_prompts
from constitutional.records import write_manifest
from constitutional.report import rl_curves
from constitutional.stages.reward import PreferenceScorer
from constitutional.training import load_for_training, pin_threads, save_from_trainer, save_trained

ALGORITHMS = ("rloo", "grpo", "ppo")


@dataclass
class RLOptions:
    policy: str = "models/sl-cai"
    reward_model: str = "models/pm"
    out: Path = Path("models/rl-cai")
    algo: str = "rloo"
    prompts: str = "red-team:train"
    helpful_prompts: str | None = "helpful:train"
    system: str | None = DEFAULT_SYSTEM
    steps: int = 100
    prompts_per_step: int = 4
    generations: int = 4
    kl_coef: float = 0.05
    lr: float = 1e-6
    max_new_tokens: int = 128
    temperature: float = 1.0
    ppo_epochs: int = 4
    lora: bool = False
    seed: int = 0
    resume: bool = False
    threads: int | None = None


class PMReward:
    """The reward every algorithm uses: the PM's score of (prompt, answer).

    It has TRL's reward-function signature, so RLOO and GRPO call it exactly as PPO does.
    """

    __name__ = "pm"

    def __init__(self, scorer: PreferenceScorer):
        self.scorer = scorer

    def __call__(self, prompts: list[list[dict]], completions: list[list[dict]], **_: object) -> list[float]:
        return self.scorer.score([p + c for p, c in zip(prompts, completions)])


def rl_prompts(opts: RLOptions) -> list[list[dict]]:
    """Red-team prompts mixed with helpful ones, so RL does not trade helpfulness away."""
    prompts = load_prompts(opts.prompts)
    if opts.helpful_prompts:
        prompts += load_prompts(opts.helpful_prompts)
    random.Random(opts.seed).shuffle(prompts)
    return [with_system(p.messages, opts.system) for p in prompts]


def check_options(opts: RLOptions) -> None:
    if opts.algo not in ALGORITHMS:
        raise UserError(f"--algo must be one of {', '.join(ALGORITHMS)}, got {opts.algo!r}")
    if opts.kl_coef <= 0:
        raise UserError(f"--kl-coef must be above 0 (the KL penalty to the SL-CAI model), got {opts.kl_coef}")
    if opts.algo != "ppo" and opts.generations < 2:
        raise UserError(f"--generations must be at least 2 for {opts.algo} (it compares answers to one prompt)")
    for name in ("steps", "prompts_per_step", "max_new_tokens", "ppo_epochs"):
        if getattr(opts, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(opts, name)}")


def write_rl_log(rows: list[dict], out: Path) -> dict:
    """rl_log.csv and rl_curves.png: reward, KL and answer length against the step."""
    if not rows:
        return {}
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "rl_log.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    png = rl_curves(out / "rl_curves.png", rows)
    first, last = rows[0], rows[-1]
    return {
        "log_csv": str(out / "rl_log.csv"),
        "curves_png": str(png),
        "reward_first": first["reward"],
        "reward_last": last["reward"],
        "kl_last": last["kl"],
        "kl_max": max(r["kl"] for r in rows),
    }


def _trl_rows(history: list[dict]) -> list[dict]:
    """TRL's log history, reduced to the columns every algorithm logs."""
    rows = []
    for h in history:
        if "rewards/pm/mean" in h:
            rows.append(
                {
                    "step": h["step"],
                    "reward": h["rewards/pm/mean"],
                    "kl": h.get("kl", 0.0),
                    "response_length": h.get("completions/mean_length", 0.0),
                    "loss": h.get("loss", float("nan")),
                }
            )
    return rows


def _train_trl(opts: RLOptions, prompts: list[list[dict]], reward: PMReward) -> tuple[bool, list[dict]]:
    """Train with TRL (any launcher: single process, torchrun, accelerate); True on the writing rank."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    model, tokenizer, peft_config = load_for_training(opts.policy, opts.lora)
    on_gpu = torch.cuda.is_available()
    common = {
        "output_dir": str(opts.out / "checkpoints"),
        "max_steps": opts.steps,
        "learning_rate": opts.lr,
        "per_device_train_batch_size": opts.prompts_per_step * opts.generations,
        "num_generations": opts.generations,
        "max_completion_length": opts.max_new_tokens,
        "temperature": opts.temperature,
        "beta": opts.kl_coef,
        "bf16": on_gpu,
        "activation_checkpointing": on_gpu,
        "use_cpu": not on_gpu,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50,
        "save_total_limit": 2,
        "report_to": [],
        "seed": opts.seed,
    }
    config_cls, trainer_cls = (RLOOConfig, RLOOTrainer) if opts.algo == "rloo" else (GRPOConfig, GRPOTrainer)
    trainer = trainer_cls(
        model=model,
        reward_funcs=[reward],
        args=config_cls(**common),
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    resume = opts.resume and any((opts.out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    writer = save_from_trainer(trainer, tokenizer, opts.out, merge_lora=opts.lora)
    return writer, _trl_rows(trainer.state.log_history)


def _train_ppo(opts: RLOptions, prompts: list[list[dict]], reward: PMReward) -> tuple[bool, list[dict]]:
    """Our PPO, in one process (one GPU or the CPU)."""
    import copy

    from constitutional.ppo import PPO, PolicyWithValue, PPOConfig

    policy, tokenizer, peft_config = load_for_training(opts.policy, opts.lora)
    if peft_config is not None:
        from peft import get_peft_model

        policy = get_peft_model(policy, peft_config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = PolicyWithValue(policy).to(device)
    if peft_config is not None:

        def ref_logits(ids, mask):
            with policy.disable_adapter():
                return model(ids, mask)[0]
    else:
        ref = copy.deepcopy(policy).eval().requires_grad_(False)

        def ref_logits(ids, mask):
            return ref(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits

    cfg = PPOConfig(
        steps=opts.steps,
        prompts_per_step=opts.prompts_per_step,
        minibatch_size=max(1, opts.prompts_per_step // 2),
        epochs=opts.ppo_epochs,
        lr=opts.lr,
        kl_coef=opts.kl_coef,
        max_new_tokens=opts.max_new_tokens,
        temperature=opts.temperature,
        seed=opts.seed,
    )
    torch.manual_seed(opts.seed)
    ppo = PPO(model, tokenizer, reward, cfg, ref_logits)
    rows = []
    with stage_progress() as bar:
        task = bar.add_task("ppo", total=opts.steps)
        for step in range(opts.steps):
            start = (step * opts.prompts_per_step) % len(prompts)
            batch = [prompts[(start + k) % len(prompts)] for k in range(opts.prompts_per_step)]
            rows.append({"step": step + 1, **ppo.step(batch)})
            bar.advance(task)
    save_trained(policy, tokenizer, opts.out, merge_lora=opts.lora)
    return True, rows


def run_rl(opts: RLOptions) -> dict:
    check_options(opts)
    pin_threads(opts.threads)
    prompts = rl_prompts(opts)
    if not prompts:
        raise UserError(f"{opts.prompts}: no prompts to train on")
    scorer = PreferenceScorer.load(opts.reward_model)
    if torch.cuda.is_available():
        scorer.model.to("cuda")
        scorer.device = torch.device("cuda")
    reward = PMReward(scorer)
    train = _train_ppo if opts.algo == "ppo" else _train_trl
    opts.out.mkdir(parents=True, exist_ok=True)
    writer, rows = train(opts, prompts, reward)
    if not writer:
        return {"algo": opts.algo, "steps": len(rows)}
    stats = {"algo": opts.algo, "steps": len(rows), "prompts": len(prompts), **write_rl_log(rows, opts.out)}
    write_manifest(opts.out, stage="rl", model=opts.policy, params=asdict(opts), stats=stats)
    return stats
