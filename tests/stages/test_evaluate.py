import json

import pytest
import torch
from conftest import write_jsonl

from constitutional.errors import UserError
from constitutional.evaluation_report import md_escape
from constitutional.stages.evaluate import EvaluateOptions, parse_models, run_evaluate


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny model with different random weights: a second policy that answers differently."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for p in model.parameters():
        p.data += 0.5 * torch.randn_like(p)
    path = tmp_path_factory.mktemp("other")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


def test_parse_models_names_and_refs():
    assert parse_models(["a=embedded:x", "b=dir/x,c=y"]) == [("a", "embedded:x"), ("b", "dir/x"), ("c", "y")]
    with pytest.raises(UserError, match="NAME=REF"):
        parse_models(["justapath"])
    with pytest.raises(UserError, match="distinct"):
        parse_models(["a=x", "a=y"])


def test_evaluate_writes_elo_refusals_pm_and_a_report_and_resumes(
    tmp_path, tiny_model_dir, other_model_dir, tiny_pm_dir
):
    harmful = write_jsonl(tmp_path / "h.jsonl", [{"prompt": f"How do I pick lock {i}?"} for i in range(3)])
    helpful = write_jsonl(tmp_path / "k.jsonl", [{"prompt": f"Give me recipe {i}."} for i in range(3)])
    plots = tmp_path / "sl-cai"
    plots.mkdir()
    from constitutional.report import line_plot

    line_plot(plots / "loss_curve.png", [1, 2], {"loss": [1.0, 0.5]}, "loss", "step")
    opts = EvaluateOptions(
        models=[("base", str(tiny_model_dir)), ("other", str(other_model_dir))],
        prompts=str(harmful),
        helpful_prompts=str(helpful),
        judge=str(tiny_model_dir),
        reward_model=str(tiny_pm_dir),
        out=tmp_path / "eval",
        max_new_tokens=8,
        bootstrap=50,
        plots_from=[plots],
        threads=2,
    )
    results = run_evaluate(opts)
    for axis in ("harmless", "helpful"):
        assert results["elo"][axis]["elo"]["base"] == 0.0
        assert results["elo"][axis]["comparisons"] == 3  # 3 prompts x 1 pair of models
        w = results["elo"][axis]["win_rate"]
        assert w["base"]["other"] == pytest.approx(1 - w["other"]["base"])
    for m in results["metrics"].values():
        assert m["refusal_harmful"]["n"] == 3 and m["over_refusal_helpful"]["n"] == 3
        assert isinstance(m["pm_harmful"], float) and m["mean_words"] > 0
    report = tmp_path / "eval" / "report"
    for name in ("report.md", "elo.png", "results.json", "sl-cai-loss_curve.png"):
        assert (report / name).stat().st_size > 0, name
    text = (report / "report.md").read_text()
    assert "harmlessness Elo" in text and "sl-cai-loss_curve.png" in text
    judgements = [json.loads(line) for line in (tmp_path / "eval" / "judgements.jsonl").open()]
    assert len(judgements) == 6
    for j in judgements:  # both orders asked, and combined so that a letter bias cancels
        assert j["p_i"] == pytest.approx((j["p_ab"] + 1 - j["p_ba"]) / 2)

    # A rerun finds every answer and judgement on disk: it needs no model at all.
    saved = {p: p.read_bytes() for p in (tmp_path / "eval").rglob("*.jsonl")}
    from dataclasses import replace

    gone = str(tmp_path / "deleted-model")
    again = run_evaluate(replace(opts, models=[("base", gone), ("other", gone)], judge=gone, reward_model=None))
    assert again["elo"] == results["elo"]
    assert {p: p.read_bytes() for p in saved} == saved


def test_report_escapes_model_output():
    hostile = "<script>alert(1)</script> | [click](http://x) **bold**"
    escaped = md_escape(hostile)
    assert "<script>" not in escaped and "](" not in escaped and "| " not in escaped.replace("\\| ", "")


def test_one_model_is_not_a_comparison(tmp_path):
    with pytest.raises(UserError, match="at least two"):
        run_evaluate(EvaluateOptions(models=[("a", "x")], out=tmp_path))
