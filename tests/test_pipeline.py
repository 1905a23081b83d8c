import json
import subprocess
import sys

import pytest
import yaml
from conftest import write_jsonl

from constitutional.errors import UserError
from constitutional.pipeline import run_pipeline
from constitutional.pipeline_config import load_config, parse_config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"optimise": "rl"}, r"optimise: unknown key; did you mean 'optimize'\?"),
        ({"models": {"polcy": "x"}}, r"models\.polcy: unknown key; did you mean 'policy'\?"),
        ({"stages": {"critque": {}}}, r"stages\.critque: unknown stage; did you mean 'critique'\?"),
        (
            {"stages": {"sft": {"epoch": 2}}},
            r"stages\.sft\.epoch: not an option.*did you mean 'epochs'\?",
        ),
        ({"stages": {"sft": {"data": "x"}}}, r"stages\.sft\.data: .*the pipeline sets it"),
        ({"stages": {"sft": {"lr": "fast"}}}, r"stages\.sft\.lr: .*number.*'fast'"),
        ({"stages": {"rl": {"steps": 0}}}, r"stages\.rl\.steps: must be at least 1, got 0"),
        ({"stages": {"sample": {"top_p": 1.5}}}, r"stages\.sample\.top_p: must be between 0 and 1"),
        ({"stages": {"dpo": {}}}, r"stages\.dpo: set optimize: dpo"),
        ({"optimize": "ppo"}, r"optimize: .*'rl' or 'dpo'"),
        ({"models": {"policy": "/no/such/model"}}, r"models\.policy: /no/such/model: not a model folder"),
        ({"engine": {"batch_size": "big"}}, r"engine\.batch_size: .*integer"),
        ({"stages": {"sft": ["epochs", 2]}}, r"stages\.sft: Input should be a valid dictionary"),
        (["a", "list"], r"expected a mapping of settings at the top level"),
    ],
)
def test_config_errors_name_the_key(config, message):
    with pytest.raises(UserError, match=message):
        parse_config(config, "cfg.yaml")


def test_yaml_syntax_errors_name_the_line_and_the_cli_exits_2(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("out: x\nstages:\n  sft: {epochs: 1\n")
    with pytest.raises(UserError, match=r"p\.yaml: line \d+"):
        load_config(path)
    path.write_text("stages:\n  sft:\n    epoch: 1\n")
    r = subprocess.run([sys.executable, "-m", "constitutional", "run", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'epochs'" in r.stderr and "Traceback" not in r.stderr


def test_shipped_configs_are_valid():
    from pathlib import Path

    examples = sorted(Path(__file__).parents[1].joinpath("examples").glob("*.yaml"))
    assert len(examples) >= 3
    for path in examples:
        load_config(path)


def tiny_config(tmp_path, model_dir) -> dict:
    red = write_jsonl(tmp_path / "red.jsonl", [{"prompt": f"How do I break into house {i}?"} for i in range(4)])
    helpful = write_jsonl(tmp_path / "helpful.jsonl", [{"prompt": f"Suggest a name for pet {i}."} for i in range(4)])
    small = {"max_new_tokens": 6}
    return {
        "out": str(tmp_path / "run"),
        "models": {"policy": str(model_dir)},
        "prompts": {
            "red_team": str(red),
            "helpful": str(helpful),
            "eval_red_team": str(red),
            "eval_helpful": str(helpful),
        },
        "engine": {"batch_size": 4, "threads": 2},
        "feedback": {"gate": 8, "fallback": "continue"},
        "stages": {
            "critique": {"revisions": 1, "few_shot": 0, **small},
            "helpful": small,
            "sft": {"batch_size": 4, "max_length": 256},
            "sample": small,
            "label": {"principles": 1, "few_shot": 0},
            "train_pm": {"batch_size": 2, "max_length": 256},
            "rl": {"steps": 1, "prompts_per_step": 2, "generations": 2, "max_new_tokens": 6},
            "evaluate": {"limit": 2, "max_new_tokens": 6, "bootstrap": 20, "few_shot": 0},
        },
    }


def test_tiny_pipeline_end_to_end_then_rerun_redoes_nothing(tmp_path, tiny_model_dir):
    raw = tiny_config(tmp_path, tiny_model_dir)
    cfg_path = tmp_path / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    outcome = run_pipeline(load_config(cfg_path))
    root = tmp_path / "run"
    assert [s for s, r in outcome["stages"].items() if r["this_run"] != "ran"] == []
    for rel in ("data/sl.jsonl", "data/helpful.jsonl", "data/pairs.jsonl", "data/prefs.jsonl"):
        assert (root / rel).stat().st_size > 0, rel
    for rel in ("models/sl-cai", "models/pm", "models/rl-cai"):
        assert (root / rel / "model.safetensors").exists(), rel
    for rel in ("report.md", "elo.png", "results.json", "rl-cai-rl_curves.png", "data-sl.scored.revisions.png"):
        assert (root / "report" / rel).exists(), rel
    results = json.loads((root / "report" / "results.json").read_text())
    assert list(results["models"]) == ["base", "sl-cai", "rl-cai"]
    report = (root / "report" / "report.md").read_text()
    assert "Pipeline" in report and "AI feedback" in report and "but feedback.fallback is continue" in report
    assert outcome["route"] == "feedback" and json.loads((root / "data" / "gate.json").read_text())["n"] == 8

    # The rerun goes through the real CLI, and every stage is skipped.
    r = subprocess.run(
        [sys.executable, "-m", "constitutional", "run", str(cfg_path)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("up to date, skipped") == len(outcome["stages"])

    # Changing one stage's option reruns that stage and what depends on it, nothing upstream.
    raw["stages"]["evaluate"]["bootstrap"] = 30
    cfg_path.write_text(yaml.safe_dump(raw))
    again = run_pipeline(load_config(cfg_path))
    ran = [s for s, rec in again["stages"].items() if rec["this_run"] != "skipped"]
    assert ran == ["evaluate"]


def test_interrupted_stage_resumes_and_a_failed_gate_falls_back_to_revisions(tmp_path, tiny_model_dir):
    raw = tiny_config(tmp_path, tiny_model_dir)
    raw["optimize"] = "dpo"
    raw["feedback"] = {"gate": 8, "fallback": "revisions"}
    del raw["stages"]["rl"]
    config = parse_config(raw, "cfg")
    from constitutional.pipeline import plan

    critique = plan(config)[0]
    # Half of the critique records exist and its manifest says it was running when it stopped.
    from dataclasses import replace

    from constitutional.pipeline import _key, _manifest

    key = _key(critique, {}, tmp_path / "run")
    critique.run(replace(critique.options, limit=2))
    first_two = (tmp_path / "run" / "data" / "sl.jsonl").read_text()
    _manifest(tmp_path / "run", "critique").parent.mkdir(parents=True)
    _manifest(tmp_path / "run", "critique").write_text(json.dumps({"key": key, "status": "running"}))
    outcome = run_pipeline(config)
    assert outcome["stages"]["critique"]["this_run"] == "resumed"
    text = (tmp_path / "run" / "data" / "sl.jsonl").read_text()
    assert text.startswith(first_two) and len(text.splitlines()) == 4
    assert "dpo-cai" in outcome["results"]["models"]
    # The random model fails the gate; preferences come from the revisions, and no pairs are sampled.
    assert outcome["route"] == "revisions" and "revision_pairs" in outcome["stages"]
    assert "sample" not in outcome["stages"] and not (tmp_path / "run" / "data" / "pairs.jsonl").exists()
    prefs = [json.loads(line) for line in (tmp_path / "run" / "data" / "prefs.jsonl").open()]
    assert prefs and all(p["source"]["kind"] == "revisions" for p in prefs)
    assert "preferences come from the critique stage" in (tmp_path / "run" / "report" / "report.md").read_text()
