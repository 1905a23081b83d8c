"""The `cai run` config: one file that names the constitution, prompts, models and stages.

Everything is checked before any work starts. Unknown keys get a "did you mean", bad
values name their key (``stages.sft.lr``), and out-of-range numbers are caught here rather
than an hour into a run. Stage sections take the same option names as the stage's command,
less the ones the pipeline wires up itself (inputs, outputs, models).
"""

import difflib
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict

from constitutional.engines import DEFAULT_MODEL, parse_model_ref
from constitutional.errors import UserError
from constitutional.fileformats import load_structured
from constitutional.scaleout import RayOptions
from constitutional.stages.critique import CritiqueOptions
from constitutional.stages.dpo import DPOOptions
from constitutional.stages.evaluate import EvaluateOptions
from constitutional.stages.label import LabelOptions
from constitutional.stages.revision_pairs import RevisionPairsOptions
from constitutional.stages.reward import PMOptions
from constitutional.stages.rl import RLOptions
from constitutional.stages.sample import SampleOptions
from constitutional.stages.sft import SFTOptions

#: stage section -> (options class, fields the pipeline sets itself)
STAGES: dict[str, tuple[type, set[str]]] = {
    "critique": (CritiqueOptions, {"prompts", "constitution", "model", "out", "resume", "threads"}),
    "helpful": (CritiqueOptions, {"prompts", "constitution", "model", "out", "resume", "threads", "revisions"}),
    "sft": (SFTOptions, {"data", "model", "out", "mix", "resume", "threads"}),
    "sample": (SampleOptions, {"prompts", "model", "out", "resume", "threads"}),
    "label": (LabelOptions, {"pairs", "constitution", "model", "out", "resume", "threads", "gate", "min_accuracy"}),
    "revision_pairs": (RevisionPairsOptions, {"data", "out", "resume"}),
    "train_pm": (PMOptions, {"data", "model", "out", "mix", "resume", "threads"}),
    "rl": (RLOptions, {"policy", "reward_model", "out", "prompts", "helpful_prompts", "resume", "threads"}),
    "dpo": (DPOOptions, {"data", "model", "out", "resume", "threads"}),
    "evaluate": (
        EvaluateOptions,
        {"models", "prompts", "helpful_prompts", "constitution", "judge", "reward_model", "out", "resume", "threads"},
    ),
}

#: numeric options and their allowed ranges (inclusive); None = unbounded
RANGES: dict[str, tuple[float | None, float | None]] = {
    "revisions": (0, None),
    "n": (2, None),
    "principles": (1, None),
    "batch_size": (1, None),
    "chunk": (1, None),
    "max_new_tokens": (1, None),
    "max_length": (16, None),
    "epochs": (0, None),
    "lr": (0, None),
    "steps": (1, None),
    "prompts_per_step": (1, None),
    "generations": (1, None),
    "ppo_epochs": (1, None),
    "kl_coef": (1e-12, None),
    "beta": (0, None),
    "temperature": (0, None),
    "top_p": (0, 1),
    "mix_ratio": (0, 0.99),
    "min_confidence": (0.5, 1),
    "label_smoothing": (0, 0.49),
    "eval_fraction": (0, 0.5),
    "limit": (1, None),
    "few_shot": (0, None),
    "bootstrap": (0, None),
    "lora_r": (1, None),
    "grad_accum": (1, None),
    "save_steps": (1, None),
    "p_chosen": (0.5000001, 1),
    "gate": (0, None),
    "min_accuracy": (0, 1),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Models(_Strict):
    policy: str = DEFAULT_MODEL
    feedback: str | None = None  # default: the policy
    judge: str | None = None  # default: the feedback model


class Prompts(_Strict):
    red_team: str = "red-team:train"
    helpful: str = "helpful:train"
    eval_red_team: str = "red-team:test"
    eval_helpful: str = "helpful:test"


class Feedback(_Strict):
    """The quality gate on the feedback model, and what to do when it is near chance."""

    gate: int = 100  # HHH comparisons to score first; 0 turns the gate off
    min_accuracy: float = 0.5
    # stop: end the run; revisions: train on revision preferences instead; continue: label anyway
    fallback: Literal["stop", "revisions", "continue"] = "revisions"


class Engine(_Strict):
    backend: Literal["transformers", "vllm"] = "transformers"  # for every local or hub model that generates
    batch_size: int = 16
    threads: int | None = None
    concurrency: int = 8  # requests in flight when a model is openai:MODEL@URL
    ray: RayOptions | None = None  # shard the generation stages over Ray replicas


class PipelineConfig(_Strict):
    out: str = "runs/cai"
    constitution: str = "default"
    seed: int = 0
    optimize: Literal["rl", "dpo"] = "rl"
    models: Models = Models()
    prompts: Prompts = Prompts()
    engine: Engine = Engine()
    feedback: Feedback = Feedback()
    stages: dict[str, dict[str, Any]] = {}


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def _check_stage(source: str, name: str, section: Any) -> None:
    if name not in STAGES:
        raise UserError(f"{source}: stages.{name}: unknown stage{_suggest(name, list(STAGES))}")
    if not isinstance(section, dict):
        raise UserError(f"{source}: stages.{name}: expected a mapping of options, got {type(section).__name__}")
    cls, wired = STAGES[name]
    allowed = [f.name for f in fields(cls) if f.name not in wired]
    for key, value in section.items():
        if key not in allowed:
            hint = " (the pipeline sets it)" if key in wired else _suggest(key, allowed)
            raise UserError(f"{source}: stages.{name}.{key}: not an option of this stage{hint}")
        bounds = RANGES.get(key)
        if bounds and isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = bounds
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                span = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
                raise UserError(f"{source}: stages.{name}.{key}: must be {span}, got {value}")
    try:
        pydantic.TypeAdapter(cls).validate_python({f.name: getattr(cls(), f.name) for f in fields(cls)} | section)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{source}: stages.{name}.{where}: {err['msg']} (got {err.get('input')!r})") from None


def _resolve(value: str, base: Path) -> str:
    """A relative file path in the config is relative to the config file, like a Makefile's."""
    head = value.split(":")[0]
    if value and not Path(value).is_absolute() and (base / head).exists() and not Path(head).exists():
        return str(base / value)
    return value


def parse_config(data: Any, source: str, base: Path = Path()) -> PipelineConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        config = PipelineConfig.model_validate(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            section = PipelineConfig
            for part in err["loc"][:-1]:
                section = section.model_fields[str(part)].annotation
            hint = _suggest(str(err["loc"][-1]), list(section.model_fields))
            raise UserError(f"{source}: {where}: unknown key{hint}") from None
        raise UserError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})") from None
    for name, section in config.stages.items():
        _check_stage(source, name, section)
    for key in ("gate", "min_accuracy"):
        lo, hi = RANGES[key]
        value = getattr(config.feedback, key)
        if value < lo or (hi is not None and value > hi):
            span = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise UserError(f"{source}: feedback.{key}: must be {span}, got {value}")
    if config.optimize == "rl" and "dpo" in config.stages:
        raise UserError(f"{source}: stages.dpo: set optimize: dpo to use it (optimize is rl)")
    if config.optimize == "dpo" and "rl" in config.stages:
        raise UserError(f"{source}: stages.rl: set optimize: rl to use it (optimize is dpo)")
    config.constitution = _resolve(config.constitution, base)
    for key in Prompts.model_fields:
        setattr(config.prompts, key, _resolve(getattr(config.prompts, key), base))
    for key in Models.model_fields:
        ref = getattr(config.models, key)
        if ref is not None:
            ref = _resolve(ref, base)
            try:
                parse_model_ref(ref)
            except UserError as e:
                raise UserError(f"{source}: models.{key}: {e}") from None
            setattr(config.models, key, ref)
    return config


def load_config(path: Path) -> PipelineConfig:
    config = parse_config(load_structured(path), str(path), path.parent)
    if not os.path.isabs(config.out):
        config.out = str(Path(config.out))
    return config
