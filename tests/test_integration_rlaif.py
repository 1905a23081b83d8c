"""The RLAIF data path on the embedded model, for real: sft -> sample -> label -> train-pm -> score."""

import subprocess
import sys

import pytest

from constitutional.records import read_records

pytestmark = pytest.mark.slow


def cai(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "constitutional", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return " ".join((r.stdout + r.stderr).split())


def test_embedded_model_through_the_rlaif_data_stages(tmp_path):
    sl, pairs, prefs = tmp_path / "sl.jsonl", tmp_path / "pairs.jsonl", tmp_path / "prefs.jsonl"
    cai("critique", "--limit", "4", "--revisions", "1", "--max-new-tokens", "32", "--out", str(sl))
    cai("sft", "--data", str(sl), "--out", str(tmp_path / "sl-cai"), "--batch-size", "2", "--max-length", "512")
    cai("sample", "--model", str(tmp_path / "sl-cai"), "--limit", "6", "--max-new-tokens", "32", "--out", str(pairs))
    said = cai("label", "--pairs", str(pairs), "--principles", "2", "--debias", "--gate", "20", "--out", str(prefs))
    assert "feedback gate" in said and "on 20 HHH comparisons" in said
    cai(
        "train-pm",
        "--data",
        str(prefs),
        "--out",
        str(tmp_path / "pm"),
        "--batch-size",
        "2",
        "--max-length",
        "512",
        "--eval-fraction",
        "0.34",
    )
    cai("score", "--reward-model", str(tmp_path / "pm"), "--data", str(sl))
    labelled = read_records(prefs)
    assert len(labelled) == 6
    assert all(0.5 <= r["p_chosen"] <= 1 and len(r["votes"]) == 4 for r in labelled)
    scored = read_records(tmp_path / "sl.scored.jsonl")
    assert all(len(r["pm_scores"]) == 2 for r in scored)
    assert (tmp_path / "pm" / "calibration.png").exists()
