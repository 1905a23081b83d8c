import json
import math

import pytest
import torch
from conftest import write_jsonl

from constitutional.errors import UserError
from constitutional.records import read_records
from constitutional.stages.reward import PMOptions, PreferenceScorer, run_train_pm, soft_label_loss
from constitutional.stages.score import ScoreOptions, run_score


def test_soft_label_loss_matches_the_formula_by_hand():
    # d = 1, p = 0.8: -(0.8 log s(1) + 0.2 log(1 - s(1))) = 0.8 * 0.3132617 + 0.2 * 1.3132617
    loss = soft_label_loss(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([0.8]))
    assert loss.item() == pytest.approx(0.8 * 0.3132617 + 0.2 * 1.3132617, abs=1e-6)
    # p = 1 is the Bradley-Terry loss, -log s(d)
    bt = soft_label_loss(torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert bt.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))), abs=1e-6)


def prefs(tmp_path, n=12):
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": str(i),
                "prompt": [{"role": "user", "content": f"question {i}"}],
                "chosen": [{"role": "assistant", "content": f"a careful kind answer {i}"}],
                "rejected": [{"role": "assistant", "content": f"go away {i}"}],
                "p_chosen": 0.7 + 0.02 * i,
            }
        )
    return write_jsonl(tmp_path / "prefs.jsonl", rows)


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_train_pm_saves_a_scorer_with_held_out_metrics(tmp_path, tiny_model_dir, hard):
    out = tmp_path / "pm"
    stats = run_train_pm(
        PMOptions(
            data=prefs(tmp_path),
            model=str(tiny_model_dir),
            out=out,
            batch_size=4,
            hard_labels=hard,
            lr=1e-3,
            eval_fraction=0.25,
        )
    )
    assert stats["train_pairs"] == 9 and stats["eval_pairs"] == 3
    assert 0.0 <= stats["eval_accuracy"] <= 1.0 and math.isfinite(stats["train_loss"])
    for name in ("model.safetensors", "calibration.png", "loss_curve.png", "training_log.csv", "manifest.json"):
        assert (out / name).exists(), name
    scores = PreferenceScorer.load(str(out)).score(
        [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    )
    assert len(scores) == 1 and math.isfinite(scores[0])


def test_bad_preference_records_are_named(tmp_path, tiny_model_dir):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "prompt": [], "chosen": [], "rejected": [], "p_chosen": 2}])
    with pytest.raises(UserError, match=r"record 1: p_chosen 2\.0"):
        run_train_pm(PMOptions(data=bad, model=str(tiny_model_dir), out=tmp_path / "pm"))


def test_score_gives_one_score_per_revision_and_a_curve(tmp_path, tiny_model_dir):
    pm = tmp_path / "pm"
    run_train_pm(PMOptions(data=prefs(tmp_path), model=str(tiny_model_dir), out=pm, batch_size=4, eval_fraction=0))
    sl = [
        {
            "id": str(i),
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "initial": "first",
            "rounds": [{"principle": "x", "critique": "c", "revision": f"better {k}"} for k in range(3)],
            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "better 2"}],
        }
        for i in range(4)
    ]
    src = write_jsonl(tmp_path / "sl.jsonl", sl)
    stats = run_score(ScoreOptions(reward_model=str(pm), data=src))
    scored = read_records(tmp_path / "sl.scored.jsonl")
    assert all(len(r["pm_scores"]) == 4 and r["pm_score"] == r["pm_scores"][-1] for r in scored)
    assert len(stats["mean_by_revision"]) == 4
    assert (tmp_path / "sl.scored.revisions.png").exists()
    assert json.loads((tmp_path / "sl.jsonl").read_text().splitlines()[0]) == sl[0], "input left untouched"
