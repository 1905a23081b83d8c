"""Local generation and scoring with `transformers`, on CPU or GPU.

Two things make it fast enough for the critique loop on a small machine:
- batching with left padding, batches sorted by length so little compute goes to padding;
- reuse of a shared prompt prefix (the constitution's few-shot examples, repeated in every
  conversation): its KV cache is computed once and copied into each batch, the way vLLM's
  automatic prefix caching does. Conversations then differ only after the prefix, so they are
  padded in the middle (prefix, padding, suffix) and positions come from the attention mask.
"""

import copy
from collections import OrderedDict

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from constitutional.engines.base import SamplingParams
from constitutional.messages import Conversation

MIN_SHARED_PREFIX = 64  # tokens; shorter prefixes cost more to copy than to recompute
MAX_CACHED_PREFIXES = 4


def _common_prefix_len(seqs: list[list[int]]) -> int:
    shortest = min(len(s) for s in seqs)
    n = 0
    while n < shortest and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


class TransformersEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 16,
        prefix_cache: bool = True,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.tokens_generated = 0
        self._prefixes: OrderedDict[tuple[int, ...], DynamicCache] = OrderedDict()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device

    # -- prompts -------------------------------------------------------------------------
    def encode_chat(self, conversation: Conversation) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- prefix cache --------------------------------------------------------------------
    def _shared_prefix(self, seqs: list[list[int]], keep: int = 1) -> tuple[int, ...]:
        """The longest cached or cacheable prefix of every sequence, leaving ``keep`` tokens out."""
        if not self.prefix_cache:
            return ()
        limit = min(len(s) for s in seqs) - keep
        for key in self._prefixes:
            if len(key) <= limit and all(tuple(s[: len(key)]) == key for s in seqs):
                self._prefixes.move_to_end(key)
                return key
        if len(seqs) < 2:
            return ()
        n = min(_common_prefix_len(seqs), limit)
        if n < MIN_SHARED_PREFIX:
            return ()
        key = tuple(seqs[0][:n])
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            self.model(input_ids=torch.tensor([key], device=self.device), cache=cache)
        self._prefixes[key] = cache
        while len(self._prefixes) > MAX_CACHED_PREFIXES:
            self._prefixes.popitem(last=False)
        return key

    def _batch_inputs(
        self, seqs: list[list[int]], prefix: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, DynamicCache | None]:
        """Pad to one width: [prefix][pad...][suffix], or plain left padding without a prefix."""
        p = len(prefix)
        width = max(len(s) - p for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids, mask = [], []
        for s in seqs:
            gap = width - (len(s) - p)
            ids.append(list(prefix) + [pad] * gap + s[p:])
            mask.append([1] * p + [0] * gap + [1] * (len(s) - p))
        cache = None
        if prefix:
            cache = copy.deepcopy(self._prefixes[prefix])
            cache.batch_repeat_interleave(len(seqs))
        as_tensor = lambda x: torch.tensor(x, device=self.device)  # noqa: E731
        return as_tensor(ids), as_tensor(mask), cache

    # -- the Engine protocol -------------------------------------------------------------
    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str]:
        encoded = [self.encode_chat(c) for c in conversations]
        return self._generate(encoded, params)

    def _generate(self, encoded: list[list[int]], params: SamplingParams) -> list[str]:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[str] = [""] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seqs = [encoded[i] for i in idx]
            for i, text in zip(idx, self._generate_batch(seqs, params)):
                out[i] = text
        return out

    def _generate_batch(self, seqs: list[list[int]], params: SamplingParams) -> list[str]:
        prefix = self._shared_prefix(seqs)
        ids, mask, cache = self._batch_inputs(seqs, prefix)
        sampling = params.temperature > 0
        kwargs = {"temperature": params.temperature, "top_p": params.top_p} if sampling else {}
        if params.stop:
            kwargs |= {"stop_strings": params.stop, "tokenizer": self.tokenizer}
        torch.manual_seed(params.seed)
        with torch.inference_mode():
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                cache=cache,
                max_new_tokens=params.max_new_tokens,
                do_sample=sampling,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
                **kwargs,
            )
        texts = []
        for row in gen[:, ids.shape[1] :].tolist():
            eos = self.model.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
            n = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
            self.tokens_generated += n
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            for s in params.stop:
                text = text.split(s, 1)[0]
            texts.append(text.strip())
        return texts

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        choice_ids = [self._encode(c) for c in choices]
        if all(len(c) == 1 for c in choice_ids):
            # One forward pass per prompt: the choices are alternative next tokens.
            last = self._next_token_logprobs([self._encode(p) for p in prompts])
            return [[row[c[0]].item() for c in choice_ids] for row in last]
        seqs = [self._encode(p) + c for p in prompts for c in choice_ids]
        spans = [len(c) for _ in prompts for c in choice_ids]
        totals = self._continuation_logprobs(seqs, spans)
        k = len(choices)
        return [totals[i * k : (i + 1) * k] for i in range(len(prompts))]

    def _forward_logprobs(self, seqs: list[list[int]], keep: int = 1) -> list[torch.Tensor]:
        """Per-position next-token log-probs for each sequence, batched and prefix-cached."""
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [seqs[i] for i in idx]
            prefix = self._shared_prefix(batch, keep)
            ids, mask, cache = self._batch_inputs(batch, prefix)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids[:, len(prefix) :],
                    attention_mask=mask,
                    position_ids=positions[:, len(prefix) :],
                    cache=cache,
                ).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = logprobs[row].cpu()
        return out

    def _next_token_logprobs(self, seqs: list[list[int]]) -> list[torch.Tensor]:
        return [lp[-1] for lp in self._forward_logprobs(seqs)]

    def _continuation_logprobs(self, seqs: list[list[int]], spans: list[int]) -> list[float]:
        totals = []
        for seq, lp, n in zip(seqs, self._forward_logprobs(seqs, keep=max(spans) + 1), spans):
            # lp covers the suffix after any cached prefix; the last n tokens are the choice.
            targets = torch.tensor(seq[-n:])
            picked = lp[-n - 1 : -1].gather(-1, targets[:, None])
            totals.append(picked.sum().item())
        return totals
