"""Shared fixtures: a tiny random-weight Llama with the real SmolLM2 tokenizer.

The tokenizer comes from the embedded model's cached checkpoint, so chat templates and
tokenization are the real ones while the network is small enough for fast tests.
"""

import json
from pathlib import Path

import pytest
import torch

from constitutional.engines.loading import embedded_checkpoint


@pytest.fixture(scope="session")
def smol_dir() -> Path:
    return embedded_checkpoint("smollm2-135m")


@pytest.fixture(scope="session")
def tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A 2-layer Llama saved like any checkpoint, for tests that load models by path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pm_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny Llama with a scalar head: a random preference model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    path = tmp_path_factory.mktemp("tiny-pm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def tiny_engine(tiny_model_dir):
    from constitutional.engines import load_engine

    return load_engine(str(tiny_model_dir), batch_size=4)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
