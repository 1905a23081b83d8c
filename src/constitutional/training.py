"""What every training stage shares: loading a trainable model, saving it, logging curves."""

import csv
import os
from pathlib import Path

import torch

from constitutional.engines.loading import resolve_checkpoint, trust_remote_code
from constitutional.errors import UserError
from constitutional.report import line_plot


def pin_threads(threads: int | None) -> None:
    """Set torch's CPU threads explicitly: two processes fighting over cores run >10x slower."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def trainer_args(
    out: Path, epochs: float, lr: float, batch_size: int, max_length: int, seed: int, save_steps: int = 50
) -> dict:
    """Arguments every TRL config here shares, with defaults that suit a CPU as well as a GPU.

    Checkpoints go to OUT/checkpoints every ``save_steps`` (the last two are kept), which is
    what ``--resume`` continues from."""
    on_gpu = torch.cuda.is_available()
    return {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": epochs,
        "learning_rate": lr,
        "per_device_train_batch_size": batch_size,
        "max_length": max_length,
        # TRL turns both on by default; on a CPU they only slow training down.
        "bf16": on_gpu,
        "activation_checkpointing": on_gpu,
        # Without it, transformers treats torchrun's CPU processes as separate runs, not DDP over gloo.
        "use_cpu": not on_gpu,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 2,
        "report_to": [],
        "seed": seed,
    }


def load_tokenizer(ref: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(ref), trust_remote_code=trust_remote_code())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_for_training(ref: str, lora: bool, lora_r: int = 16, head: str = "causal-lm"):
    """(model, tokenizer, peft_config): fp32 on CPU, bf16 on GPU; a LoRA config when asked."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = resolve_checkpoint(ref)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    tokenizer = load_tokenizer(ref)
    try:
        if head == "causal-lm":
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code()
            )
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code()
            )
            model.config.pad_token_id = tokenizer.pad_token_id
    except (OSError, ValueError) as e:
        raise UserError(f"{ref}: could not load the model for training: {str(e).splitlines()[0]}") from None
    peft_config = None
    if lora:
        from peft import LoraConfig

        task = "CAUSAL_LM" if head == "causal-lm" else "SEQ_CLS"
        peft_config = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules="all-linear", task_type=task)
    return model, tokenizer, peft_config


def save_trained(model, tokenizer, out: Path, merge_lora: bool) -> None:
    """Save a plain safetensors checkpoint that `--model DIR` loads anywhere (LoRA merged in)."""
    if merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def save_from_trainer(trainer, tokenizer, out: Path, merge_lora: bool) -> bool:
    """Save the trained model once, however training was launched; True on the writing rank.

    Under DeepSpeed ZeRO-3 or FSDP the weights are sharded, so saving is collective: every
    rank takes part in `Trainer.save_model`, which gathers them (LoRA adapters stay
    adapters there). Otherwise only rank 0 writes, merging LoRA into a plain checkpoint.
    """
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(out))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(out)
    elif trainer.is_world_process_zero():
        save_trained(trainer.model, tokenizer, out, merge_lora)
    return trainer.is_world_process_zero()


def log_history_outputs(history: list[dict], out: Path, key: str, title: str) -> dict:
    """Write the trainer's per-step logs as CSV and plot ``key`` against the step."""
    rows = [h for h in history if key in h]
    if not rows:
        return {}
    fields = sorted({k for h in rows for k in h})
    csv_path = out / "training_log.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    png = line_plot(out / f"{key}_curve.png", [h["step"] for h in rows], {key: [h[key] for h in rows]}, title, "step")
    return {"log_csv": str(csv_path), "curve_png": str(png)}
