"""DPO on AI preference labels: the modern alternative to a PM plus RL.

`trl.DPOTrainer` needs hard pairs, so each soft label is binarised: the side with
``p_chosen >= 0.5`` is chosen. Pairs whose label is close to a coin flip carry little signal
and much noise, so ``min_confidence`` drops them, and ``label_smoothing`` (conservative
DPO, Mitchell 2023) absorbs the noise that remains. With LoRA no reference copy is held:
TRL disables the adapter to get reference log-probs.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from constitutional.engines import DEFAULT_MODEL
from constitutional.errors import UserError
from constitutional.records import write_manifest
from constitutional.stages.reward import preference_rows
from constitutional.training import load_for_training, log_history_outputs, pin_threads, save_from_trainer, trainer_args


@dataclass
class DPOOptions:
    data: Path = Path("prefs.jsonl")
    model: str = DEFAULT_MODEL
    out: Path = Path("models/rl-cai")
    min_confidence: float = 0.5
    beta: float = 0.1
    label_smoothing: float = 0.0
    lora: bool = False
    lora_r: int = 16
    epochs: float = 1.0
    lr: float = 1e-6
    batch_size: int = 8
    max_length: int = 1024
    seed: int = 0
    save_steps: int = 50
    resume: bool = False
    threads: int | None = None


def confident_pairs(rows: list[dict], min_confidence: float) -> list[dict]:
    """Binarised pairs whose label is at least ``min_confidence`` sure of one side."""
    out = []
    for r in rows:
        p = r["p_chosen"]
        if max(p, 1 - p) < min_confidence:
            continue
        chosen, rejected = (r["chosen"], r["rejected"]) if p >= 0.5 else (r["rejected"], r["chosen"])
        out.append({"prompt": r["prompt"], "chosen": chosen, "rejected": rejected})
    return out


def run_dpo(opts: DPOOptions) -> dict:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not 0.5 <= opts.min_confidence <= 1.0:
        raise UserError(f"--min-confidence must be in [0.5, 1], got {opts.min_confidence}")
    if not 0.0 <= opts.label_smoothing < 0.5:
        raise UserError(f"--label-smoothing must be in [0, 0.5), got {opts.label_smoothing}")
    pin_threads(opts.threads)
    rows = preference_rows(opts.data)
    pairs = confident_pairs(rows, opts.min_confidence)
    if not pairs:
        raise UserError(
            f"{opts.data}: no pair has a label of at least {opts.min_confidence} confidence "
            f"(of {len(rows)}); lower --min-confidence"
        )
    model, tokenizer, peft_config = load_for_training(opts.model, opts.lora, opts.lora_r)
    config = DPOConfig(
        **trainer_args(opts.out, opts.epochs, opts.lr, opts.batch_size, opts.max_length, opts.seed, opts.save_steps),
        beta=opts.beta,
        label_smoothing=opts.label_smoothing,
    )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    resume = opts.resume and any((opts.out / "checkpoints").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    if not save_from_trainer(trainer, tokenizer, opts.out, merge_lora=opts.lora):
        return {
            "pairs": len(pairs),
            "dropped_low_confidence": len(rows) - len(pairs),
            "train_loss": result.training_loss,
            "steps": result.global_step,
        }
    curves = log_history_outputs(trainer.state.log_history, opts.out, "loss", "DPO loss")
    stats = {
        "pairs": len(pairs),
        "dropped_low_confidence": len(rows) - len(pairs),
        "train_loss": result.training_loss,
        "steps": result.global_step,
        **curves,
    }
    write_manifest(opts.out, stage="dpo", model=opts.model, params=asdict(opts), stats=stats)
    return stats
