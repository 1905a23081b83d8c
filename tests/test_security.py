"""Loading runs nothing it was not asked to: safetensors only, no remote code by default, no eval."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from constitutional.engines import load_engine
from constitutional.errors import UserError

SRC = Path(__file__).parents[1] / "src"


def test_a_pickle_only_checkpoint_is_refused(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM(AutoConfig.from_pretrained(tiny_model_dir))
    path = tmp_path / "pickled"
    path.mkdir()
    model.config.save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")  # a pickle, as old checkpoints ship
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    with pytest.raises(UserError, match="could not load the model"):
        load_engine(str(path))


def test_checkpoint_code_does_not_run_without_trust_remote_code(tmp_path, tiny_model_dir):
    path = tmp_path / "remote-code"
    path.mkdir()
    for f in tiny_model_dir.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "code-ran"
    (path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    config["model_type"] = "evil"
    (path / "config.json").write_text(json.dumps(config))
    args = [sys.executable, "-m", "constitutional", "sample", "--model", str(path), "--limit", "2"]
    r = subprocess.run([*args, "--out", str(tmp_path / "p.jsonl")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not marker.exists(), "the checkpoint's own code ran"


def test_no_eval_exec_or_shell_in_the_package():
    for py in SRC.rglob("*.py"):
        text = py.read_text()
        assert not re.search(r"(?<![.\w])(eval|exec)\(", text), py
        assert "shell=True" not in text, py
        assert "pickle.load(" not in text and "torch.load(" not in text, py
