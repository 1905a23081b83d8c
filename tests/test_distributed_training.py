"""Training stages run unchanged under torchrun: 2 CPU processes, DDP over gloo."""

import json
import os
import subprocess
import sys

import pytest
from conftest import write_jsonl

pytestmark = pytest.mark.slow


def test_sft_under_torchrun_uses_both_ranks_and_saves_once(tmp_path, tiny_model_dir):
    rows = [
        {"id": str(i), "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(8)
    ]
    data = write_jsonl(tmp_path / "sl.jsonl", rows)
    out = tmp_path / "sl-cai"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "constitutional", "sft", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(out),
            "--batch-size", "2", "--max-length", "128", "--threads", "1",
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((out / "manifest.json").read_text())["stats"]
    # 8 examples, 2 per process per step: 2 steps with both ranks (4 with one).
    assert stats["steps"] == 2 and stats["rows"] == 8
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
