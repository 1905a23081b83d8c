"""Engines turn model references into something stages can call; see `base.Engine`."""

from constitutional.engines.base import Engine, Failure, NoLogprobs, SamplingParams, chat_alive
from constitutional.engines.loading import DEFAULT_MODEL, load_engine, parse_model_ref

__all__ = [
    "DEFAULT_MODEL",
    "Engine",
    "Failure",
    "NoLogprobs",
    "SamplingParams",
    "chat_alive",
    "load_engine",
    "parse_model_ref",
]
