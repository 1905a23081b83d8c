"""The `cai` command: thin typer wrappers, one per stage, over the stages' public functions.

User mistakes (`UserError`) print one line and exit 2, without a traceback.
"""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from constitutional import constitution as constitution_lib
from constitutional.engines import DEFAULT_MODEL
from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM
from constitutional.secrets import redact

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Constitutional AI (Bai et al. 2022) end to end, for any model and any constitution.",
)


@app.callback()
def _global_options(
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="let checkpoints run their own Python code (off by default)")
    ] = False,
) -> None:
    if trust_remote_code:
        os.environ["CAI_TRUST_REMOTE_CODE"] = "1"


constitution_app = typer.Typer(no_args_is_help=True, help="Check and read constitutions.")
app.add_typer(constitution_app, name="constitution")
console = Console()
err_console = Console(stderr=True)

Model = Annotated[str, typer.Option("--model", "-m", help="embedded:NAME, a folder, a hub id, or openai:MODEL@URL")]
Threads = Annotated[int | None, typer.Option(min=1, help="torch CPU threads")]
Concurrency = Annotated[int, typer.Option(min=1, help="requests in flight to an openai: server")]
RayAddress = Annotated[
    str | None, typer.Option("--ray", help="shard over Ray: 'local' starts one here; 'auto' or ray://HOST:PORT joins")
]
Replicas = Annotated[int, typer.Option(min=1, help="engine replicas under --ray")]
ReplicaCPUs = Annotated[float, typer.Option(min=0.0, help="CPUs per replica under --ray")]
ReplicaGPUs = Annotated[float, typer.Option(min=0.0, help="GPUs per replica under --ray")]


def _ray(address: str | None, replicas: int, cpus: float, gpus: float):
    from constitutional.scaleout import RayOptions

    return RayOptions(address, replicas, cpus, gpus) if address else None


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@constitution_app.command("validate")
def constitution_validate(ref: Annotated[str, typer.Argument(help="a file or a preset name")]) -> None:
    """Check a constitution; errors name the file, the principle and the field."""
    c = constitution_lib.load(ref)
    fs = c.few_shot
    console.print(
        f"[green]ok[/green] {ref}: {c.name!r}, {len(c.principles)} principles, "
        f"{len(fs.critique_revision)} critique/revision and {len(fs.comparison)} comparison examples"
    )


@constitution_app.command("show")
def constitution_show(ref: Annotated[str, typer.Argument(help="a file or a preset name")]) -> None:
    """Print a constitution's principles as a table."""
    c = constitution_lib.load(ref)
    table = Table(title=f"{c.name}: {c.description}", show_lines=True)
    for col in ("id", "critique", "revision", "comparison"):
        table.add_column(col, overflow="fold")
    for p in c.principles:
        table.add_row(p.id, p.critique, p.revision, p.comparison)
    console.print(table)
    fs = c.few_shot
    console.print(f"few-shot: {len(fs.critique_revision)} critique/revision, {len(fs.comparison)} comparison")


@constitution_app.command("list")
def constitution_list() -> None:
    """List the built-in presets."""
    for name in constitution_lib.presets():
        console.print(name)


@app.command()
def critique(
    prompts: Annotated[
        str, typer.Option(help="red-team[:train|:test], helpful, FILE.jsonl|.txt, FILE.csv[:COL], hf:...")
    ] = "red-team:train",
    constitution: Annotated[str, typer.Option("--constitution", "-c", help="a file or a preset")] = "default",
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option(help="output JSONL")] = Path("sl.jsonl"),
    revisions: Annotated[int, typer.Option(min=0, help="critique/revision rounds")] = 4,
    critique: Annotated[bool, typer.Option("--critique/--no-critique", help="--no-critique revises directly")] = True,
    principles: Annotated[str | None, typer.Option(help="comma-separated principle ids to draw from")] = None,
    system: Annotated[str, typer.Option(help="system prompt; '' for none")] = DEFAULT_SYSTEM,
    few_shot: Annotated[int | None, typer.Option(min=0, help="worked examples to use (default all)")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    chunk: Annotated[int, typer.Option(min=1, help="prompts advanced together and saved as a unit")] = 64,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 200,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    threads: Threads = None,
    concurrency: Concurrency = 8,
    ray: RayAddress = None,
    replicas: Replicas = 2,
    cpus_per_replica: ReplicaCPUs = 1.0,
    gpus_per_replica: ReplicaGPUs = 0.0,
) -> None:
    """SL-CAI data: initial answers, then N critique/revision rounds against sampled principles."""
    from constitutional.stages.critique import CritiqueOptions, run_critique

    opts = CritiqueOptions(
        prompts=prompts,
        constitution=constitution,
        model=model,
        out=out,
        revisions=revisions,
        critique=critique,
        principles=_split(principles),
        system=system or None,
        few_shot=few_shot,
        batch_size=batch_size,
        chunk=chunk,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        limit=limit,
        resume=resume,
        threads=threads,
        concurrency=concurrency,
        ray=_ray(ray, replicas, cpus_per_replica, gpus_per_replica),
    )
    stats = run_critique(opts)
    console.print(
        f"{out}: {stats['records']} records ({stats['new']} new), "
        f"{stats['tokens']:,} tokens in {stats['seconds']:.1f}s = {stats['tokens_per_s']:.1f} tok/s"
    )


@app.command()
def sample(
    prompts: Annotated[str, typer.Option(help="prompt set or file, as for critique")] = "red-team:train",
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option()] = Path("pairs.jsonl"),
    n: Annotated[int, typer.Option(min=2, help="answers per prompt")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 is greedy")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    system: Annotated[str, typer.Option(help="system prompt; '' for none")] = DEFAULT_SYSTEM,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    chunk: Annotated[int, typer.Option(min=1, help="items advanced together and saved as a unit")] = 64,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    threads: Threads = None,
    concurrency: Concurrency = 8,
    ray: RayAddress = None,
    replicas: Replicas = 2,
    cpus_per_replica: ReplicaCPUs = 1.0,
    gpus_per_replica: ReplicaGPUs = 0.0,
) -> None:
    """Draw N answers per prompt from a model: the pairs that AI feedback compares."""
    from constitutional.stages.sample import SampleOptions, run_sample

    stats = run_sample(
        SampleOptions(
            prompts=prompts,
            model=model,
            out=out,
            n=n,
            system=system or None,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            chunk=chunk,
            seed=seed,
            limit=limit,
            resume=resume,
            threads=threads,
            concurrency=concurrency,
            ray=_ray(ray, replicas, cpus_per_replica, gpus_per_replica),
        )
    )
    console.print(f"{out}: {stats['records']} records ({stats['new']} new) in {stats['seconds']:.1f}s")


def _clamp(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value.split(","))
    except ValueError:
        raise UserError(f"--clamp must be LO,HI (for example 0.4,0.6), got {value!r}") from None
    return lo, hi


@app.command()
def label(
    pairs: Annotated[Path, typer.Option(help="pairs.jsonl from `cai sample`")] = Path("pairs.jsonl"),
    constitution: Annotated[str, typer.Option("--constitution", "-c")] = "default",
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option()] = Path("prefs.jsonl"),
    principles: Annotated[int, typer.Option(min=1, help="principles sampled per pair (ensemble size)")] = 4,
    debias: Annotated[bool, typer.Option(help="score both option orders and average them")] = False,
    calibrate: Annotated[bool, typer.Option(help="divide out the letter prior from content-free options")] = False,
    cot: Annotated[bool, typer.Option(help="chain of thought first; probabilities clamped")] = False,
    clamp: Annotated[str, typer.Option(help="LO,HI bounds for --cot probabilities")] = "0.4,0.6",
    few_shot: Annotated[int | None, typer.Option(min=0, help="worked comparisons to prepend (default all)")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    chunk: Annotated[int, typer.Option(min=1, help="items advanced together and saved as a unit")] = 64,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    gate: Annotated[
        int, typer.Option(min=0, help="first check the method on N HHH comparisons, warn if near chance; 0: off")
    ] = 100,
    min_accuracy: Annotated[float, typer.Option(min=0.0, max=1.0, help="the gate's required accuracy")] = 0.5,
    threads: Threads = None,
    concurrency: Concurrency = 8,
    ray: RayAddress = None,
    replicas: Replicas = 2,
    cpus_per_replica: ReplicaCPUs = 1.0,
    gpus_per_replica: ReplicaGPUs = 0.0,
) -> None:
    """AI feedback: soft preference labels from (A)/(B) log-probs, ensembled over principles."""
    from constitutional.stages.label import LabelOptions, run_label

    stats = run_label(
        LabelOptions(
            pairs=pairs,
            constitution=constitution,
            model=model,
            out=out,
            principles=principles,
            debias=debias,
            calibrate=calibrate,
            cot=cot,
            clamp=_clamp(clamp),
            few_shot=few_shot,
            batch_size=batch_size,
            chunk=chunk,
            seed=seed,
            limit=limit,
            resume=resume,
            gate=gate,
            min_accuracy=min_accuracy,
            threads=threads,
            concurrency=concurrency,
            ray=_ray(ray, replicas, cpus_per_replica, gpus_per_replica),
        )
    )
    if stats["gate"] is not None:
        g = stats["gate"]
        if g["passed"]:
            console.print(f"feedback gate passed: {g['reason']}")
        else:
            err_console.print(
                f"[bold yellow]warning:[/bold yellow] feedback gate failed: {g['reason']}. Labels from this model "
                "are likely noise; consider `cai pairs-from-revisions` or a stronger --model.",
                highlight=False,
            )
    msg = f"{out}: {stats['records']} labelled pairs ({stats['new']} new)"
    if stats["order_disagreement"] is not None:
        msg += f"; the two option orders disagree on {stats['order_disagreement']:.1%} of questions"
    console.print(msg)


@app.command("pairs-from-revisions")
def pairs_from_revisions(
    data: Annotated[Path, typer.Argument(help="sl.jsonl from `cai critique`")],
    out: Annotated[Path, typer.Option()] = Path("prefs.jsonl"),
    all_rounds: Annotated[bool, typer.Option(help="also every later-over-earlier pair of revisions")] = False,
    p_chosen: Annotated[float, typer.Option(help="the soft label these pairs get")] = 1.0,
) -> None:
    """Preferences without a judge: each final revision over its initial answer (TRL format)."""
    from constitutional.stages.revision_pairs import RevisionPairsOptions, run_revision_pairs

    stats = run_revision_pairs(
        RevisionPairsOptions(data=data, out=out, all_rounds=all_rounds, p_chosen=p_chosen, resume=False)
    )
    console.print(
        f"{out}: {stats['pairs']} pairs from {stats['records']} records "
        f"({stats['unrevised_records']} whose revision equals the initial answer gave none)"
    )


@app.command("bench-feedback")
def bench_feedback(
    model: Model = DEFAULT_MODEL,
    constitution: Annotated[str, typer.Option("--constitution", "-c")] = "anthropic-2022",
    settings: Annotated[str | None, typer.Option(help="comma-separated subset of the settings")] = None,
    principles: Annotated[int, typer.Option(min=1)] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="first N of the 438 comparisons")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    out: Annotated[Path, typer.Option(help="folder for the table and the chart")] = Path("bench-feedback"),
    threads: Threads = None,
    concurrency: Concurrency = 8,
) -> None:
    """Accuracy of the feedback method on the paper's 438 HHH comparisons, per setting."""
    import json

    from constitutional.records import write_atomic
    from constitutional.stages.bench_feedback import SETTINGS, BenchOptions, run_bench_feedback

    rows = run_bench_feedback(
        BenchOptions(
            model=model,
            constitution=constitution,
            settings=_split(settings) or list(SETTINGS),
            principles=principles,
            limit=limit,
            batch_size=batch_size,
            out=out,
            threads=threads,
            concurrency=concurrency,
        )
    )
    table = Table(title=f"feedback accuracy, {model}")
    for col in ("setting", "n", "accuracy", "95% CI", "mean P(correct)"):
        table.add_column(col)
    for r in rows:
        lo, hi = r["ci95"]
        table.add_row(
            r["setting"], str(r["n"]), f"{r['accuracy']:.1%}", f"{lo:.1%} to {hi:.1%}", f"{r['mean_p_correct']:.3f}"
        )
    console.print(table)
    write_atomic(out / "results.json", json.dumps(rows, indent=2) + "\n")
    console.print(f"chart: {out / 'feedback_accuracy.png'}")


@app.command()
def sft(
    data: Annotated[Path, typer.Option(help="sl.jsonl from `cai critique`")] = Path("sl.jsonl"),
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option()] = Path("models/sl-cai"),
    mix: Annotated[Path | None, typer.Option(help="helpfulness records to mix in")] = None,
    mix_ratio: Annotated[float, typer.Option(min=0.0, max=0.99, help="share of the mix in training")] = 0.5,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (merged on save)")] = False,
    epochs: Annotated[float, typer.Option(min=0.0)] = 1.0,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_length: Annotated[int, typer.Option(min=16)] = 1024,
    seed: int = 0,
    save_steps: Annotated[int, typer.Option(min=1, help="checkpoint every N steps (for --resume)")] = 50,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint")] = False,
    threads: Threads = None,
) -> None:
    """Fine-tune on (prompt, final revision) with TRL's SFTTrainer: the SL-CAI model."""
    from constitutional.stages.sft import SFTOptions, run_sft

    stats = run_sft(
        SFTOptions(
            data=data,
            model=model,
            out=out,
            mix=mix,
            mix_ratio=mix_ratio,
            lora=lora,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
            save_steps=save_steps,
            resume=resume,
            threads=threads,
        )
    )
    console.print(f"{out}: {stats['rows']} examples, {stats['steps']} steps, train loss {stats['train_loss']:.3f}")


@app.command("train-pm")
def train_pm(
    data: Annotated[Path, typer.Option(help="prefs.jsonl from `cai label`")] = Path("prefs.jsonl"),
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option()] = Path("models/pm"),
    mix: Annotated[Path | None, typer.Option(help="other preference data to add")] = None,
    hard_labels: Annotated[bool, typer.Option(help="Bradley-Terry on hard choices instead of soft labels")] = False,
    eval_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.1,
    lora: bool = False,
    epochs: Annotated[float, typer.Option(min=0.0)] = 1.0,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_length: Annotated[int, typer.Option(min=16)] = 1024,
    seed: int = 0,
    save_steps: Annotated[int, typer.Option(min=1, help="checkpoint every N steps (for --resume)")] = 50,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint")] = False,
    threads: Threads = None,
) -> None:
    """Train a preference model on soft AI labels (a subclass of TRL's RewardTrainer)."""
    from constitutional.stages.reward import PMOptions, run_train_pm

    stats = run_train_pm(
        PMOptions(
            data=data,
            model=model,
            out=out,
            mix=mix,
            hard_labels=hard_labels,
            eval_fraction=eval_fraction,
            lora=lora,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
            save_steps=save_steps,
            resume=resume,
            threads=threads,
        )
    )
    msg = f"{out}: {stats['train_pairs']} training pairs, loss {stats['train_loss']:.3f}"
    if "eval_accuracy" in stats:
        msg += (
            f"; held out: accuracy {stats['eval_accuracy']:.1%} on {stats['eval_pairs']} pairs, "
            f"mean margin {stats['eval_mean_margin']:.3f}"
        )
    console.print(msg)


@app.command()
def rl(
    policy: Annotated[str, typer.Option(help="the SL-CAI model (from `cai sft`)")] = "models/sl-cai",
    reward_model: Annotated[str, typer.Option(help="the PM (from `cai train-pm`)")] = "models/pm",
    out: Annotated[Path, typer.Option()] = Path("models/rl-cai"),
    algo: Annotated[str, typer.Option(help="rloo (TRL), grpo (TRL, beta > 0) or ppo (ours, as in the paper)")] = "rloo",
    prompts: Annotated[str, typer.Option(help="harmful prompts, as for critique")] = "red-team:train",
    helpful_prompts: Annotated[str, typer.Option(help="helpful prompts mixed in; '' for none")] = "helpful:train",
    system: Annotated[str, typer.Option(help="system prompt; '' for none")] = DEFAULT_SYSTEM,
    steps: Annotated[int, typer.Option(min=1)] = 100,
    prompts_per_step: Annotated[int, typer.Option(min=1)] = 4,
    generations: Annotated[int, typer.Option(min=1, help="answers per prompt (rloo, grpo)")] = 4,
    kl_coef: Annotated[float, typer.Option(help="KL penalty to the SL-CAI model (beta)")] = 0.05,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-6,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 128,
    temperature: Annotated[float, typer.Option(min=0.01)] = 1.0,
    ppo_epochs: Annotated[int, typer.Option(min=1, help="passes over each rollout (ppo)")] = 4,
    lora: bool = False,
    seed: int = 0,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint (rloo, grpo)")] = False,
    threads: Threads = None,
) -> None:
    """RL-CAI: train the policy against the PM with a KL penalty to the SL-CAI model."""
    from constitutional.stages.rl import RLOptions, run_rl

    stats = run_rl(
        RLOptions(
            policy=policy,
            reward_model=reward_model,
            out=out,
            algo=algo,
            prompts=prompts,
            helpful_prompts=helpful_prompts or None,
            system=system or None,
            steps=steps,
            prompts_per_step=prompts_per_step,
            generations=generations,
            kl_coef=kl_coef,
            lr=lr,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            ppo_epochs=ppo_epochs,
            lora=lora,
            seed=seed,
            resume=resume,
            threads=threads,
        )
    )
    console.print(
        f"{out}: {stats['algo']}, {stats['steps']} steps; PM reward {stats['reward_first']:.3f} -> "
        f"{stats['reward_last']:.3f}, KL at the end {stats['kl_last']:.4f}; curves: {stats['curves_png']}"
    )


@app.command()
def dpo(
    data: Annotated[Path, typer.Option(help="prefs.jsonl from `cai label`")] = Path("prefs.jsonl"),
    model: Model = "models/sl-cai",
    out: Annotated[Path, typer.Option()] = Path("models/rl-cai"),
    min_confidence: Annotated[float, typer.Option(help="drop pairs whose label is less sure than this")] = 0.5,
    beta: Annotated[float, typer.Option(min=0.0)] = 0.1,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=0.49)] = 0.0,
    lora: bool = False,
    epochs: Annotated[float, typer.Option(min=0.0)] = 1.0,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-6,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_length: Annotated[int, typer.Option(min=16)] = 1024,
    seed: int = 0,
    save_steps: Annotated[int, typer.Option(min=1, help="checkpoint every N steps (for --resume)")] = 50,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint")] = False,
    threads: Threads = None,
) -> None:
    """DPO on the AI preference labels (TRL's DPOTrainer), an alternative to PM + RL."""
    from constitutional.stages.dpo import DPOOptions, run_dpo

    stats = run_dpo(
        DPOOptions(
            data=data,
            model=model,
            out=out,
            min_confidence=min_confidence,
            beta=beta,
            label_smoothing=label_smoothing,
            lora=lora,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
            save_steps=save_steps,
            resume=resume,
            threads=threads,
        )
    )
    console.print(
        f"{out}: {stats['pairs']} pairs ({stats['dropped_low_confidence']} dropped as unsure), "
        f"{stats['steps']} steps, loss {stats['train_loss']:.3f}"
    )


@app.command()
def evaluate(
    models: Annotated[
        list[str], typer.Option("--models", help="NAME=REF, repeated (or comma-separated); the first is the Elo anchor")
    ],
    prompts: Annotated[str, typer.Option(help="harmful prompts (held out)")] = "red-team:test",
    helpful_prompts: Annotated[str, typer.Option(help="helpful prompts (held out)")] = "helpful:test",
    constitution: Annotated[str, typer.Option("--constitution", "-c", help="its comparison principles judge")] = (
        "default"
    ),
    judge: Annotated[str, typer.Option(help="the judge model")] = DEFAULT_MODEL,
    reward_model: Annotated[str | None, typer.Option(help="a PM: adds its mean score per model")] = None,
    out: Annotated[Path, typer.Option()] = Path("eval"),
    system: Annotated[str, typer.Option(help="system prompt; '' for none")] = DEFAULT_SYSTEM,
    limit: Annotated[int | None, typer.Option(min=1, help="first N prompts of each set")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    bootstrap: Annotated[int, typer.Option(min=0, help="resamples for the Elo intervals")] = 1000,
    plots_from: Annotated[list[Path] | None, typer.Option(help="folders whose PNGs join the report")] = None,
    seed: int = 0,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    threads: Threads = None,
    concurrency: Concurrency = 8,
    ray: RayAddress = None,
    replicas: Replicas = 2,
    cpus_per_replica: ReplicaCPUs = 1.0,
    gpus_per_replica: ReplicaGPUs = 0.0,
) -> None:
    """Head to head: answers, a judge in both orders, Elo with intervals, refusal rates, report/."""
    from constitutional.stages.evaluate import EvaluateOptions, parse_models, run_evaluate

    results = run_evaluate(
        EvaluateOptions(
            models=parse_models(models),
            prompts=prompts,
            helpful_prompts=helpful_prompts,
            constitution=constitution,
            judge=judge,
            reward_model=reward_model,
            out=out,
            system=system or None,
            limit=limit,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            bootstrap=bootstrap,
            plots_from=plots_from or [],
            seed=seed,
            resume=resume,
            threads=threads,
            concurrency=concurrency,
            ray=_ray(ray, replicas, cpus_per_replica, gpus_per_replica),
        )
    )
    _print_headline(results)
    console.print(f"report: {out / 'report' / 'report.md'}")


def _print_headline(results: dict) -> None:
    from constitutional.evaluation_report import headline_rows

    header, rows = headline_rows(results)
    table = Table(title="headline (Elo relative to the first model, 95% intervals)")
    for col in header:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _run_and_show(config) -> None:
    from constitutional.pipeline import run_pipeline

    outcome = run_pipeline(config, console)
    table = Table(title="stages")
    for col in ("stage", "this run", "seconds"):
        table.add_column(col)
    for name, rec in outcome["stages"].items():
        table.add_row(name, rec["this_run"], f"{rec.get('seconds', 0):.0f}")
    console.print(table)
    _print_headline(outcome["results"])
    console.print(f"report: {outcome['report']}")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="a pipeline YAML/JSON/TOML file (see examples/)")],
    out: Annotated[Path | None, typer.Option(help="output folder (overrides the config's out)")] = None,
) -> None:
    """The whole pipeline from one config; finished stages are skipped, a killed run resumes."""
    from constitutional.pipeline_config import load_config

    cfg = load_config(config)
    if out is not None:
        cfg.out = str(out)
    _run_and_show(cfg)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/demo"),
    threads: Threads = None,
) -> None:
    """The whole pipeline on the embedded model, offline, in under 20 minutes on 2 CPU cores."""
    from importlib import resources

    from constitutional.pipeline_config import load_config

    with resources.as_file(resources.files("constitutional") / "pipelines" / "demo.yaml") as path:
        cfg = load_config(path)
    cfg.out = str(out)
    cfg.engine.threads = threads
    _run_and_show(cfg)


@app.command()
def score(
    reward_model: Annotated[str, typer.Option(help="a PM folder from `cai train-pm`")],
    data: Annotated[Path, typer.Option(help="sl.jsonl, pairs.jsonl, prefs.jsonl or any messages file")],
    out: Annotated[Path | None, typer.Option(help="default: DATA.scored.jsonl")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
) -> None:
    """Add pm_score (and pm_scores per answer or revision) to every record."""
    from constitutional.stages.score import ScoreOptions, run_score

    stats = run_score(ScoreOptions(reward_model=reward_model, data=data, out=out, batch_size=batch_size))
    console.print(f"{stats['out']}: {stats['records']} records scored")
    if "mean_by_revision" in stats:
        means = ", ".join(f"{m:.3f}" for m in stats["mean_by_revision"])
        console.print(f"mean PM score by revision (0 = initial): {means}; plot: {stats['curve_png']}")


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="a records JSONL file")],
    format: Annotated[str, typer.Option("--format", help="parquet or hf")] = "parquet",
    out: Annotated[Path | None, typer.Option(help="output path (default: beside FILE)")] = None,
) -> None:
    """Write records as Parquet or a `datasets` folder, with TRL's prompt/completion view."""
    from constitutional.records import export_records

    target = out or file.with_suffix(".parquet" if format == "parquet" else ".hf")
    console.print(f"wrote {export_records(file, format, target)}")


def main() -> None:
    try:
        app()
    except UserError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(redact(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)
