"""SL-CAI: fine-tune on (prompt, final revision), mixed with helpfulness data.

Bai et al. 2022, 3.1: the SL-CAI model is trained on the revisions together with samples
from the helpful model on helpfulness prompts, so that harmlessness training does not
erase helpfulness. Here `trl.SFTTrainer` takes TRL's conversational prompt/completion
format, so the loss falls on the answer only.
"""

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from constitutional.engines import DEFAULT_MODEL
from constitutional.errors import UserError
from constitutional.records import read_records, sft_view, write_manifest
from constitutional.training import load_for_training, log_history_outputs, pin_threads, save_from_trainer, trainer_args


@dataclass
class SFTOptions:
    data: Path = Path("sl.jsonl")
    model: str = DEFAULT_MODEL
    out: Path = Path("models/sl-cai")
    mix: Path | None = None
    mix_ratio: float = 0.5  # share of the training set drawn from --mix
    lora: bool = False
    lora_r: int = 16
    epochs: float = 1.0
    lr: float = 2e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 1024
    seed: int = 0
    save_steps: int = 50
    resume: bool = False
    threads: int | None = None


def sft_rows(path: Path) -> list[dict]:
    rows = []
    for n, rec in enumerate(read_records(path), 1):
        view = sft_view(rec)
        if "completion" not in view:
            raise UserError(f"{path}: record {n}: needs 'messages' ending with an assistant turn")
        rows.append({"prompt": view["prompt"], "completion": view["completion"]})
    return rows


def mixed_rows(opts: SFTOptions) -> list[dict]:
    rows = sft_rows(opts.data)
    if opts.mix is None:
        return rows
    if not 0.0 <= opts.mix_ratio < 1.0:
        raise UserError(f"--mix-ratio must be in [0, 1), got {opts.mix_ratio}")
    helpful = sft_rows(opts.mix)
    want = round(len(rows) * opts.mix_ratio / (1 - opts.mix_ratio))
    rng = random.Random(opts.seed)
    rows += rng.sample(helpful, min(want, len(helpful)))
    rng.shuffle(rows)
    return rows


def run_sft(opts: SFTOptions) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    pin_threads(opts.threads)
    rows = mixed_rows(opts)
    model, tokenizer, peft_config = load_for_training(opts.model, opts.lora, opts.lora_r)
    config = SFTConfig(
        **trainer_args(opts.out, opts.epochs, opts.lr, opts.batch_size, opts.max_length, opts.seed, opts.save_steps),
        gradient_accumulation_steps=opts.grad_accum,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    resume = opts.resume and any((opts.out / "checkpoints").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    if not save_from_trainer(trainer, tokenizer, opts.out, merge_lora=opts.lora):
        return {"rows": len(rows), "train_loss": result.training_loss, "steps": result.global_step}
    curves = log_history_outputs(trainer.state.log_history, opts.out, "loss", "SFT loss")
    stats = {"rows": len(rows), "train_loss": result.training_loss, "steps": result.global_step, **curves}
    params = asdict(opts)
    write_manifest(opts.out, stage="sft", model=opts.model, params=params, stats=stats)
    return stats
