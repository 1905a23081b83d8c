"""Random YAML and JSON into the constitution and pipeline loaders: only the clean error comes out."""

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constitutional.constitution import load as load_constitution
from constitutional.errors import UserError
from constitutional.pipeline_config import load_config

KEYS = ["name", "principles", "id", "critique", "revision", "comparison", "few_shot", "stages", "sft", "lr",
        "models", "policy", "feedback", "gate", "out", "engine", "ray", "optimize", "prompts"]  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=20))
keys = st.sampled_from(KEYS) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
texts = st.one_of(
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def _only_clean_errors(load, path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        load(path)
    except UserError as e:
        assert str(e).startswith(str(path)) or str(path) in str(e), str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, suffix=st.sampled_from([".yaml", ".json", ".toml"]))
def test_constitution_loader_raises_only_user_errors(tmp_path, text, suffix):
    _only_clean_errors(load_constitution, tmp_path / f"c{suffix}", text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, suffix=st.sampled_from([".yaml", ".json"]))
def test_pipeline_config_loader_raises_only_user_errors(tmp_path, text, suffix):
    _only_clean_errors(load_config, tmp_path / f"p{suffix}", text)
