import json
import subprocess
import sys

import pytest
from conftest import write_jsonl

from constitutional.errors import UserError
from constitutional.records import read_records
from constitutional.stages.revision_pairs import RevisionPairsOptions, revision_pairs, run_revision_pairs
from constitutional.stages.reward import preference_rows


def sl_record(i, answers):
    return {
        "id": f"r{i}",
        "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"}],
        "initial": answers[0],
        "rounds": [{"principle": "p", "critique": "c", "revision": a} for a in answers[1:]],
    }


def test_final_revision_is_chosen_over_the_initial_answer():
    (pair,) = revision_pairs(sl_record(0, ["bad", "better", "best"]), all_rounds=False, p_chosen=0.9)
    assert pair["chosen"] == [{"role": "assistant", "content": "best"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "bad"}]
    assert pair["p_chosen"] == 0.9 and pair["prompt"][-1]["content"] == "q0"


def test_all_rounds_adds_every_later_over_earlier_pair_and_skips_identical_texts():
    pairs = revision_pairs(sl_record(0, ["a", "b", "c"]), all_rounds=True, p_chosen=1.0)
    got = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}
    assert got == {("b", "a"), ("c", "a"), ("c", "b")}
    assert revision_pairs(sl_record(1, ["same", "same "]), all_rounds=False, p_chosen=1.0) == []


def test_cli_output_trains_unchanged_in_train_pm_format(tmp_path):
    data = write_jsonl(
        tmp_path / "sl.jsonl", [sl_record(i, [f"a{i}", f"b{i}"]) for i in range(3)] + [sl_record(9, ["x", "x"])]
    )
    out = tmp_path / "prefs.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "constitutional",
            "pairs-from-revisions",
            str(data),
            "--out",
            str(out),
            "--p-chosen",
            "0.8",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "3 pairs from 4 records (1 whose revision equals" in " ".join(r.stdout.split())
    rows = preference_rows(out)
    assert len(rows) == 3 and all(row["p_chosen"] == 0.8 for row in rows)
    assert len({rec["id"] for rec in read_records(out)}) == 3
    assert json.loads((tmp_path / "prefs.manifest.json").read_text())["stage"] == "pairs-from-revisions"


def test_bad_input_is_named(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"id": "1", "prompt": [], "responses": ["a", "b"]}])
    with pytest.raises(UserError, match="record 1: not a critique record"):
        run_revision_pairs(RevisionPairsOptions(data=data, out=tmp_path / "o.jsonl"))
    with pytest.raises(UserError, match="p-chosen"):
        run_revision_pairs(RevisionPairsOptions(data=data, out=tmp_path / "o.jsonl", p_chosen=0.4))
