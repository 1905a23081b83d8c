import pytest

from constitutional.engines.loading import load_engine, parse_model_ref
from constitutional.errors import UserError


def test_model_references_parse(tmp_path):
    assert parse_model_ref("embedded:smollm2-135m").kind == "embedded"
    assert parse_model_ref(str(tmp_path)).kind == "path"
    assert parse_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    ref = parse_model_ref("openai:llama@http://127.0.0.1:8000/v1")
    assert (ref.kind, ref.name, ref.url) == ("openai", "llama", "http://127.0.0.1:8000/v1")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("embedded:gpt-9", "unknown embedded model"),
        ("openai:nourl", "expected openai:MODEL@"),
        ("./no/such/folder", "not a model folder"),
    ],
)
def test_bad_references_get_one_clear_error(ref, expected):
    with pytest.raises(UserError, match=expected):
        parse_model_ref(ref)


def test_folder_without_a_model_fails_clearly(tmp_path):
    with pytest.raises(UserError, match="could not load the model"):
        load_engine(str(tmp_path))


def test_embedded_model_is_cached_as_safetensors(smol_dir):
    assert (smol_dir / "model.safetensors").exists()
    assert (smol_dir / "tokenizer.json").exists()
