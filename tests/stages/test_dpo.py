import pytest
import torch
from conftest import write_jsonl
from safetensors.torch import load_file

from constitutional.errors import UserError
from constitutional.stages.dpo import DPOOptions, confident_pairs, run_dpo


def prefs(tmp_path, labels):
    rows = [
        {
            "id": str(i),
            "prompt": [{"role": "user", "content": f"question {i}"}],
            "chosen": [{"role": "assistant", "content": f"a kind answer {i}"}],
            "rejected": [{"role": "assistant", "content": f"go away {i}"}],
            "p_chosen": p,
        }
        for i, p in enumerate(labels)
    ]
    return write_jsonl(tmp_path / "prefs.jsonl", rows)


def test_min_confidence_drops_coin_flips_and_flips_labels_below_half():
    rows = [{"prompt": [], "chosen": ["x"], "rejected": ["y"], "p_chosen": p} for p in (0.95, 0.55, 0.5, 0.2)]
    kept = confident_pairs(rows, 0.7)
    assert len(kept) == 2
    assert kept[0]["chosen"] == ["x"] and kept[1]["chosen"] == ["y"]  # 0.2 means the other side is preferred


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_dpo_trains_and_saves_a_changed_loadable_model(tmp_path, tiny_model_dir, lora):
    data = prefs(tmp_path, [0.9, 0.8, 0.52, 0.7, 0.95])
    out = tmp_path / "dpo"
    stats = run_dpo(
        DPOOptions(data=data, model=str(tiny_model_dir), out=out, min_confidence=0.6, lora=lora, lr=1e-3, batch_size=2)
    )
    assert stats["pairs"] == 4 and stats["dropped_low_confidence"] == 1 and stats["steps"] == 2
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(before) == set(after)  # LoRA merged: a plain checkpoint
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (out / "training_log.csv").exists()


def test_nothing_left_after_the_confidence_filter_is_a_clear_error(tmp_path, tiny_model_dir):
    data = prefs(tmp_path, [0.5, 0.55])
    with pytest.raises(UserError, match=r"no pair has a label of at least 0\.9"):
        run_dpo(DPOOptions(data=data, model=str(tiny_model_dir), out=tmp_path / "o", min_confidence=0.9))
