"""Engines turn model references into something stages can call; see `base.Engine`."""

from constitutional.engines.base import Engine, SamplingParams
from constitutional.engines.loading import DEFAULT_MODEL, load_engine, parse_model_ref

__all__ = ["DEFAULT_MODEL", "Engine", "SamplingParams", "load_engine", "parse_model_ref"]
