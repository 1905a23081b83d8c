"""`cai run`: every stage from one config, into one folder, skipping what is already done.

    OUT/data/      sl.jsonl, helpful.jsonl, pairs.jsonl, prefs.jsonl, sl.scored.jsonl, eval/
    OUT/models/    sl-cai, pm, rl-cai
    OUT/report/    report.md, elo.png, results.json, the stages' plots
    OUT/manifests/ one file per stage: its key, status, time and figures

A stage's key hashes its options, the keys of the stages it reads from, and the content of
outside inputs (prompt files, the constitution, model folders). A stage whose manifest holds
the same key and says "complete" is skipped; one that says "running" was interrupted and
resumes (records by id, training from its last checkpoint); a changed key starts it afresh.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console

from constitutional import constitution as constitution_lib
from constitutional.engines import parse_model_ref
from constitutional.errors import UserError
from constitutional.pipeline_config import PipelineConfig
from constitutional.records import file_hash, write_atomic
from constitutional.secrets import redact
from constitutional.stages.critique import CritiqueOptions, run_critique
from constitutional.stages.dpo import DPOOptions, run_dpo
from constitutional.stages.evaluate import EvaluateOptions, run_evaluate
from constitutional.stages.gate import GateOptions, run_gate
from constitutional.stages.label import LabelOptions, run_label
from constitutional.stages.revision_pairs import RevisionPairsOptions, run_revision_pairs
from constitutional.stages.reward import PMOptions, run_train_pm
from constitutional.stages.rl import RLOptions, run_rl
from constitutional.stages.sample import SampleOptions, run_sample
from constitutional.stages.score import ScoreOptions, run_score
from constitutional.stages.sft import SFTOptions, run_sft

#: options that change how a stage runs, not what it produces
_NOT_IN_KEY = {"resume", "threads", "notes", "concurrency", "ray", "save_steps"}


@dataclass
class Step:
    name: str
    options: object
    run: Callable[[object], dict]
    needs: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # prompt specs, model refs, the constitution
    output: Path | None = None


def _outside_fingerprint(ref: str) -> str:
    """Content identity of an input the pipeline did not make."""
    path = Path(ref.split(":")[0]) if ":" in ref and not Path(ref).exists() else Path(ref)
    if path.is_file():
        return file_hash(path)
    if path.is_dir():
        listing = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
    return ref  # a preset, a built-in prompt set, an embedded model or a hub id: the name is the identity


def plan(config: PipelineConfig, route: str = "feedback") -> list[Step]:
    """The stages in order. ``route`` is how preferences are made: "feedback" (sample, then
    label with the feedback model) or "revisions" (from the critique records, no judge)."""
    root = Path(config.out)
    data, models = root / "data", root / "models"
    policy = config.models.policy
    feedback = config.models.feedback or policy
    judge = config.models.judge or feedback
    common = {"seed": config.seed, "threads": config.engine.threads}
    batch = {"batch_size": config.engine.batch_size, "concurrency": config.engine.concurrency}
    fleet = {"ray": config.engine.ray}
    s = config.stages
    p = config.prompts

    def gen(ref: str) -> str:
        """The reference generation stages use: through vLLM when engine.backend is vllm."""
        plain = not ref.startswith(("vllm:", "openai:"))
        return f"vllm:{ref}" if config.engine.backend == "vllm" and plain else ref

    def opts(cls, section: str, **wired):
        return cls(**(common | wired | s.get(section, {})))

    sl, helpful = data / "sl.jsonl", data / "helpful.jsonl"
    pairs, prefs = data / "pairs.jsonl", data / "prefs.jsonl"
    sl_cai, pm, rl_cai = models / "sl-cai", models / "pm", models / "rl-cai"
    const = config.constitution
    steps = [
        Step(
            "critique",
            opts(
                CritiqueOptions,
                "critique",
                prompts=p.red_team,
                constitution=const,
                model=gen(policy),
                out=sl,
                **batch,
                **fleet,
            ),
            run_critique,
            outside=[p.red_team, const, policy],
            output=sl,
        ),
        Step(
            "helpful",
            opts(
                CritiqueOptions,
                "helpful",
                prompts=p.helpful,
                constitution=const,
                model=gen(policy),
                out=helpful,
                revisions=0,
                **batch,
                **fleet,
            ),
            run_critique,
            outside=[p.helpful, policy],
            output=helpful,
        ),
        Step(
            "sft",
            opts(SFTOptions, "sft", data=sl, mix=helpful, model=policy, out=sl_cai),
            run_sft,
            needs=["critique", "helpful"],
            outside=[policy],
            output=sl_cai,
        ),
    ]
    gate = [] if config.feedback.gate == 0 else ["gate"]
    if gate:
        ask = {k: v for k, v in s.get("label", {}).items() if k in ("debias", "calibrate", "few_shot", "cot")}
        gate_opts = GateOptions(
            model=gen(feedback),
            constitution=const,
            n=config.feedback.gate,
            min_accuracy=config.feedback.min_accuracy,
            out=data / "gate.json",
            seed=config.seed,
            threads=config.engine.threads,
            **batch,
            **ask,
        )
        steps.append(Step("gate", gate_opts, run_gate, outside=[const, feedback], output=data / "gate.json"))
    if route == "feedback":
        prefs_step = "label"
        steps += [
            Step(
                "sample",
                opts(SampleOptions, "sample", prompts=p.red_team, model=gen(str(sl_cai)), out=pairs, **batch, **fleet),
                run_sample,
                needs=["sft"],
                outside=[p.red_team],
                output=pairs,
            ),
            Step(
                "label",
                opts(
                    LabelOptions,
                    "label",
                    pairs=pairs,
                    constitution=const,
                    model=gen(feedback),
                    out=prefs,
                    **batch,
                    **fleet,
                ),
                run_label,
                needs=["sample", *gate],
                outside=[const, feedback],
                output=prefs,
            ),
        ]
    else:
        prefs_step = "revision_pairs"
        steps.append(
            Step(
                "revision_pairs",
                RevisionPairsOptions(data=sl, out=prefs, **s.get("revision_pairs", {})),
                run_revision_pairs,
                needs=["critique", *gate],
                output=prefs,
            )
        )
    steps += [
        Step(
            "train_pm",
            opts(PMOptions, "train_pm", data=prefs, model=policy, out=pm),
            run_train_pm,
            needs=[prefs_step],
            outside=[policy],
            output=pm,
        ),
    ]
    if config.optimize == "rl":
        final = opts(
            RLOptions,
            "rl",
            policy=str(sl_cai),
            reward_model=str(pm),
            out=rl_cai,
            prompts=p.red_team,
            helpful_prompts=p.helpful,
        )
        steps.append(
            Step("rl", final, run_rl, needs=["sft", "train_pm"], outside=[p.red_team, p.helpful], output=rl_cai)
        )
        final_name = "rl-cai"
    else:
        final = opts(DPOOptions, "dpo", data=prefs, model=str(sl_cai), out=rl_cai)
        steps.append(Step("dpo", final, run_dpo, needs=["sft", prefs_step], output=rl_cai))
        final_name = "dpo-cai"
    scored = data / "sl.scored.jsonl"
    steps.append(
        Step(
            "score",
            ScoreOptions(reward_model=str(pm), data=sl, out=scored, batch_size=config.engine.batch_size),
            run_score,
            needs=["critique", "train_pm"],
            output=scored,
        )
    )
    steps.append(
        Step(
            "evaluate",
            opts(
                EvaluateOptions,
                "evaluate",
                models=[("base", gen(policy)), ("sl-cai", gen(str(sl_cai))), (final_name, gen(str(rl_cai)))],
                prompts=p.eval_red_team,
                helpful_prompts=p.eval_helpful,
                constitution=const,
                judge=gen(judge),
                reward_model=str(pm),
                out=data / "eval",
                report=root / "report",
                plots_from=[sl_cai, pm, rl_cai, data],
                **batch,
                **fleet,
            ),
            run_evaluate,
            needs=[st.name for st in steps],
            outside=[p.eval_red_team, p.eval_helpful, const, judge, policy],
            output=root / "report" / "report.md",
        )
    )
    return steps


def _key(step: Step, keys: dict[str, str], root: Path) -> str:
    options = {k: v for k, v in asdict(step.options).items() if k not in _NOT_IN_KEY}
    outside = {ref: _outside_fingerprint(ref) for ref in step.outside}
    body = json.dumps(
        {"stage": step.name, "options": options, "needs": {n: keys[n] for n in step.needs}, "outside": outside},
        sort_keys=True,
        default=str,
    ).replace(str(root), "$OUT")
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _manifest(root: Path, name: str) -> Path:
    return root / "manifests" / f"{name}.json"


def decide_route(config: PipelineConfig, gate: dict | None) -> tuple[str, str]:
    """How preferences are made, and why, from the gate's verdict and the config's fallback."""
    if gate is None:
        return "feedback", "no feedback gate configured (feedback.gate: 0)"
    if gate["passed"]:
        return "feedback", f"the gate passed: {gate['reason']}"
    fallback = config.feedback.fallback
    if fallback == "stop":
        raise UserError(
            f"feedback gate failed: {gate['reason']}. The run stops here (feedback.fallback: stop); "
            "set feedback.fallback to revisions or continue, or use a stronger models.feedback"
        )
    if fallback == "revisions":
        return "revisions", (
            f"the gate failed ({gate['reason']}), so preferences come from the critique stage "
            "instead (final revision over initial answer; feedback.fallback: revisions)"
        )
    return "feedback", f"the gate failed ({gate['reason']}), but feedback.fallback is continue: labels used anyway"


def _notes(records: dict[str, dict], config: PipelineConfig, gate: dict | None, why: str) -> list[dict]:
    """Report sections about how the run went: the feedback path, each stage's time and figures."""
    rows = ["| stage | this run | seconds | figures |", "|---|---|---|---|"]
    for name, rec in records.items():
        figures = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in (rec.get("stats") or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )
        rows.append(f"| {name} | {rec['this_run']} | {rec.get('seconds', 0):.0f} | {figures} |")
    feedback = f"**Path taken:** {why}."
    if gate is not None:
        lo, hi = gate["ci95"]
        feedback = (
            f"Feedback model `{gate['model']}` on {gate['n']} of the paper's HHH comparisons, asked as `label` "
            f"asks: accuracy **{gate['accuracy']:.1%}** (95% CI {lo:.1%} to {hi:.1%}); "
            f"required: interval above 50% and accuracy at least {config.feedback.min_accuracy:.0%}. " + feedback
        )
    return [
        {"title": "AI feedback", "body": feedback},
        {
            "title": "Pipeline",
            "body": f"Constitution `{config.constitution}`, policy `{config.models.policy}`, "
            f"feedback `{config.models.feedback or config.models.policy}`, optimiser `{config.optimize}`.\n\n"
            + "\n".join(rows),
        },
    ]


def run_pipeline(config: PipelineConfig, console: Console | None = None) -> dict:
    """Run every stage in order; returns {stage: manifest}, the evaluation results and the route."""
    console = console or Console()
    root = Path(config.out)
    keys: dict[str, str] = {}
    records: dict[str, dict] = {}
    results: dict = {}
    constitution_lib.load(config.constitution)  # fail on a bad constitution before any work
    for ref in {config.models.policy, config.models.feedback or "", config.models.judge or ""} - {""}:
        parse_model_ref(ref)
    gate, (route, why) = None, decide_route(config, None)
    steps = plan(config, route)
    i = 0
    while i < len(steps):
        step = steps[i]
        i += 1
        key = keys[step.name] = _key(step, keys, root)
        path = _manifest(root, step.name)
        prev = json.loads(path.read_text()) if path.exists() else None
        same = prev is not None and prev.get("key") == key
        if same and prev.get("status") == "complete" and (step.output is None or step.output.exists()):
            console.print(f"[dim]{step.name}: up to date, skipped[/dim]")
            records[step.name] = {**prev, "this_run": "skipped"}
        else:
            if step.name == "evaluate":
                step.options = replace(step.options, notes=_notes(records, config, gate, why))
            options = replace(step.options, resume=same) if hasattr(step.options, "resume") else step.options
            state = {"stage": step.name, "key": key, "status": "running", "options": asdict(step.options)}
            write_atomic(path, redact(json.dumps(state, indent=2, default=str)) + "\n")
            console.rule(f"{step.name}" + (" (resuming)" if same else ""))
            start = time.perf_counter()
            out = step.run(options)
            seconds = time.perf_counter() - start
            if step.name == "evaluate":
                results, out = out, {"report": str(root / "report" / "report.md")}
            state |= {"status": "complete", "seconds": seconds, "stats": out}
            write_atomic(path, redact(json.dumps(state, indent=2, default=str)) + "\n")
            records[step.name] = {**state, "this_run": "resumed" if same else "ran"}
        if step.name == "gate":
            gate = json.loads(step.output.read_text())
            route, why = decide_route(config, gate)
            console.print(f"feedback path: {why}")
            steps = plan(config, route)
    if not results:
        results = json.loads((root / "report" / "results.json").read_text())
    return {"stages": records, "results": results, "report": root / "report" / "report.md", "route": route, "why": why}
