import pytest
from conftest import write_jsonl

from constitutional import constitution as cl
from constitutional.errors import UserError
from constitutional.feedback import Comparison, judge
from constitutional.records import read_records
from constitutional.stages.label import LabelOptions, order_disagreement, run_label


def pairs_file(tmp_path, n=4):
    rows = [
        {
            "id": f"p{i}",
            "prompt": [{"role": "user", "content": f"How do I do thing {i}?"}],
            "responses": [f"Here is how to do thing {i}.", f"I will not help with thing {i}."],
        }
        for i in range(n)
    ]
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def label(tmp_path, engine, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    opts = LabelOptions(pairs=pairs_file(tmp_path), out=tmp_path / "prefs.jsonl", few_shot=1, **kw)
    stats = run_label(opts, engine)
    return read_records(opts.out), stats


def test_soft_label_is_the_mean_of_the_votes(tmp_path, tiny_engine):
    records, _ = label(tmp_path, tiny_engine, principles=3)
    ids = {p.id for p in cl.load("default").principles}
    for r in records:
        assert len(r["votes"]) == 3 and {v["principle"] for v in r["votes"]} <= ids
        mean_first = sum(v["p_first"] for v in r["votes"]) / 3
        assert r["p_chosen"] == pytest.approx(max(mean_first, 1 - mean_first))
        first = "Here is how"
        assert r["chosen"][0]["content"].startswith(first) == (mean_first >= 0.5)
        assert r["chosen"][0]["role"] == "assistant" and r["rejected"][0]["content"] != r["chosen"][0]["content"]


def test_debias_really_swaps_the_options(tmp_path, tiny_engine):
    records, stats = label(tmp_path, tiny_engine, principles=2, debias=True)
    constitution = cl.load("default")
    prefix = __import__("constitutional.feedback", fromlist=["few_shot_block"]).few_shot_block(
        constitution.few_shot.comparison[:1], cot=False
    )
    rec = records[0]
    assert [v["order"] for v in rec["votes"]] == ["ab", "ba", "ab", "ba"]
    swapped = rec["votes"][1]
    principle = constitution.principle(swapped["principle"]).comparison
    first, second = "Here is how to do thing 0.", "I will not help with thing 0."
    (p_swapped,), _ = judge(tiny_engine, [Comparison(rec["prompt"], principle, second, first)], prefix)
    assert swapped["p_a"] == pytest.approx(p_swapped, abs=1e-5)
    assert swapped["p_first"] == pytest.approx(1 - p_swapped, abs=1e-5)
    assert 0.0 <= stats["order_disagreement"] <= 1.0


def test_order_disagreement_counts_split_questions():
    def rec(*ps):
        return {"votes": [{"principle": "x", "p_first": p} for p in ps]}

    assert order_disagreement([rec(0.9, 0.8), rec(0.9, 0.2)]) == 0.5
    assert order_disagreement([rec(0.9)]) is None


def test_bad_options_are_refused(tmp_path, tiny_engine):
    with pytest.raises(UserError, match="--clamp"):
        label(tmp_path, tiny_engine, cot=True, clamp=(0.7, 0.2))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "prompt": [], "responses": ["only one"]}])
    with pytest.raises(UserError, match="two 'responses'"):
        run_label(LabelOptions(pairs=bad, out=tmp_path / "o.jsonl"), tiny_engine)


def test_labels_train_with_trl_dpo_and_the_soft_label_pm(tmp_path, tiny_engine, tiny_model_dir):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    label(tmp_path, tiny_engine, principles=1)
    ds = Dataset.from_json(str(tmp_path / "prefs.jsonl"))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = next(model.parameters()).detach().clone()
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        bf16=False,
        activation_checkpointing=False,
        learning_rate=1e-3,
        save_strategy="no",
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=ds.select_columns(["prompt", "chosen", "rejected"]), processing_class=tok
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert not next(model.parameters()).detach().equal(before)

    from constitutional.stages.reward import PMOptions, run_train_pm

    stats = run_train_pm(
        PMOptions(
            data=tmp_path / "prefs.jsonl",
            model=str(tiny_model_dir),
            out=tmp_path / "pm",
            batch_size=2,
            eval_fraction=0.25,
        )
    )
    assert stats["train_pairs"] == 3 and stats["eval_pairs"] == 1


def test_calibrate_and_gate_change_labels_and_report_the_gate(tmp_path, tiny_engine):
    plain, _ = label(tmp_path / "a", tiny_engine, principles=1)
    cal, stats = label(tmp_path / "b", tiny_engine, principles=1, calibrate=True, gate=6)
    assert 0 < stats["mean_prior_a"] < 1
    assert [r["votes"][0]["p_a"] for r in plain] != [r["votes"][0]["p_a"] for r in cal]
    gate = stats["gate"]
    assert gate["n"] == 6 and gate["method"]["calibrate"] is True and isinstance(gate["passed"], bool)
