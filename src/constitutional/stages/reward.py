"""The preference model: trained on AI soft labels, then used to score any record file.

Bai et al. 2022 train the PM on the feedback model's probabilities rather than on hard
choices. TRL's RewardTrainer only knows hard pairs (with an optional margin), so a small
subclass carries ``p_chosen`` through its collator and replaces the loss with binary
cross-entropy of ``r_chosen - r_rejected`` against it; TRL's own accuracy and margin
metrics stay. ``hard_labels`` gives the usual Bradley-Terry loss for comparison.
"""

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from constitutional.engines import DEFAULT_MODEL
from constitutional.errors import UserError
from constitutional.records import read_records, write_manifest
from constitutional.report import calibration_plot
from constitutional.training import load_for_training, log_history_outputs, pin_threads, save_from_trainer, trainer_args


def soft_label_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, p_chosen: torch.Tensor) -> torch.Tensor:
    """-[p log s(d) + (1 - p) log(1 - s(d))], d = r_chosen - r_rejected; p = 1 is Bradley-Terry."""
    return F.binary_cross_entropy_with_logits(r_chosen - r_rejected, p_chosen.to(r_chosen.dtype))


class SoftLabelCollator(DataCollatorForPreference):
    def torch_call(self, examples: list[dict]) -> dict:
        out = super().torch_call(examples)
        if "p_chosen" in examples[0]:
            out["p_chosen"] = torch.tensor([float(e["p_chosen"]) for e in examples])
        return out


class SoftLabelRewardTrainer(RewardTrainer):
    def __init__(self, *args, hard_labels: bool = False, **kwargs):
        self.hard_labels = hard_labels
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "p_chosen" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "p_chosen"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        p_chosen = inputs.pop("p_chosen", None)
        # The parent computes the Bradley-Terry loss and logs accuracy and margin.
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if p_chosen is not None and not self.hard_labels:
            r_chosen, r_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            loss = soft_label_loss(r_chosen, r_rejected, p_chosen)
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean((r_chosen + r_rejected) ** 2)
        return (loss, outputs) if return_outputs else loss


@dataclass
class PMOptions:
    data: Path = Path("prefs.jsonl")
    model: str = DEFAULT_MODEL
    out: Path = Path("models/pm")
    mix: Path | None = None
    hard_labels: bool = False
    eval_fraction: float = 0.1
    lora: bool = False
    epochs: float = 1.0
    lr: float = 1e-5
    batch_size: int = 8
    max_length: int = 1024
    seed: int = 0
    save_steps: int = 50
    resume: bool = False
    threads: int | None = None


def preference_rows(path: Path) -> list[dict]:
    rows = []
    for n, rec in enumerate(read_records(path), 1):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in rec]
        if missing:
            raise UserError(f"{path}: record {n}: missing {', '.join(missing)}")
        p = float(rec.get("p_chosen", 1.0))
        if not 0.0 <= p <= 1.0:
            raise UserError(f"{path}: record {n}: p_chosen {p} is not a probability")
        rows.append({"prompt": rec["prompt"], "chosen": rec["chosen"], "rejected": rec["rejected"], "p_chosen": p})
    return rows


def run_train_pm(opts: PMOptions) -> dict:
    from datasets import Dataset

    pin_threads(opts.threads)
    rows = preference_rows(opts.data) + (preference_rows(opts.mix) if opts.mix else [])
    rng = random.Random(opts.seed)
    rng.shuffle(rows)
    n_eval = max(1, round(len(rows) * opts.eval_fraction)) if len(rows) > 1 else 0
    held_out, train = rows[:n_eval], rows[n_eval:]
    if not train:
        raise UserError(f"{opts.data}: too few preference records to train on ({len(rows)})")
    model, tokenizer, peft_config = load_for_training(opts.model, opts.lora, head="reward")
    config = RewardConfig(
        **trainer_args(opts.out, opts.epochs, opts.lr, opts.batch_size, opts.max_length, opts.seed, opts.save_steps)
    )
    trainer = SoftLabelRewardTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train),
        processing_class=tokenizer,
        peft_config=peft_config,
        data_collator=SoftLabelCollator(pad_token_id=tokenizer.pad_token_id),
        hard_labels=opts.hard_labels,
    )
    resume = opts.resume and any((opts.out / "checkpoints").glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    if not save_from_trainer(trainer, tokenizer, opts.out, merge_lora=opts.lora):
        return {"train_pairs": len(train), "train_loss": result.training_loss}
    curves = log_history_outputs(trainer.state.log_history, opts.out, "loss", "PM training loss")
    stats = {"train_pairs": len(train), "train_loss": result.training_loss, **curves}
    if held_out:
        stats |= held_out_metrics(PreferenceScorer(trainer.model, tokenizer), held_out, opts.out, opts.seed)
    params = asdict(opts)
    write_manifest(opts.out, stage="train-pm", model=opts.model, params=params, stats=stats)
    return stats


class PreferenceScorer:
    """Scalar PM scores for conversations, batched (the PM's own chat template, no generation)."""

    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, ref: str, batch_size: int = 8) -> "PreferenceScorer":
        model, tokenizer, _ = load_for_training(ref, lora=False, head="reward")
        return cls(model, tokenizer, batch_size)

    def score(self, conversations: list[list[dict]]) -> list[float]:
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
        out: list[float] = []
        self.tokenizer.padding_side = "right"
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[i : i + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            with torch.inference_mode():
                out += self.model(**enc).logits.squeeze(-1).float().tolist()
        return out


def held_out_metrics(scorer: PreferenceScorer, rows: list[dict], out: Path, seed: int) -> dict:
    """Accuracy, mean margin, and calibration: predicted P(A better) against the labels."""
    r_c = scorer.score([r["prompt"] + r["chosen"] for r in rows])
    r_r = scorer.score([r["prompt"] + r["rejected"] for r in rows])
    rng = random.Random(seed)
    predicted, target = [], []
    for c, r, row in zip(r_c, r_r, rows):
        # Orient each pair at random so that the curve covers both halves of [0, 1].
        if rng.random() < 0.5:
            predicted.append(torch.sigmoid(torch.tensor(c - r)).item())
            target.append(row["p_chosen"])
        else:
            predicted.append(torch.sigmoid(torch.tensor(r - c)).item())
            target.append(1 - row["p_chosen"])
    png = calibration_plot(out / "calibration.png", predicted, target, "PM calibration (held out)")
    return {
        "eval_pairs": len(rows),
        "eval_accuracy": sum(c > r for c, r in zip(r_c, r_r)) / len(rows),
        "eval_mean_margin": sum(c - r for c, r in zip(r_c, r_r)) / len(rows),
        "calibration_png": str(png),
    }
