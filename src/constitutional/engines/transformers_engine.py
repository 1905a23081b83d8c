"""Local generation and scoring with `transformers`, on CPU or GPU.

What makes it fast enough for the critique loop on a small machine:
- batching with left padding, batches sorted by length so little compute goes to padding;
- a shared prompt prefix (the constitution's few-shot examples, repeated in every
  conversation) is run once and kept once, and every row attends to it through
  `shared_prefix_attention` instead of carrying its own copy, much as vLLM's prefix caching;
- rows that have finished leave the batch, so one long answer does not hold up the rest.
Generation is a plain decode loop over the model's forward pass, because `generate` cannot
pass a shared prefix to the attention.
"""

from collections import OrderedDict

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from constitutional.engines import shared_prefix_attention
from constitutional.engines.base import SamplingParams
from constitutional.engines.shared_prefix_attention import SuffixKV
from constitutional.messages import Conversation

MIN_SHARED_PREFIX = 64  # tokens; below this a shared prefix is not worth keeping
MAX_CACHED_PREFIXES = 4
PrefixKV = list[tuple[torch.Tensor, torch.Tensor]]


def _common_prefix_len(seqs: list[list[int]]) -> int:
    shortest = min(len(s) for s in seqs)
    n = 0
    while n < shortest and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def _sample(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    if params.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / params.temperature, -1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > params.top_p  # keep the smallest set reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


class TransformersEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 16,
        prefix_cache: bool = True,
    ):
        model.set_attn_implementation(shared_prefix_attention.NAME)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.tokens_generated = 0
        self._prefixes: OrderedDict[tuple[int, ...], PrefixKV] = OrderedDict()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(tokenizer.eos_token_id)
        self.device = next(model.parameters()).device

    def encode_chat(self, conversation: Conversation) -> list[int]:
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self._encode(text)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- shared prefix ---------------------------------------------------------------------
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
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([key], device=self.device), cache=cache)
        self._prefixes[key] = [(layer.keys, layer.values) for layer in cache.layers]
        while len(self._prefixes) > MAX_CACHED_PREFIXES:
            self._prefixes.popitem(last=False)
        return key

    def _prefill(self, seqs: list[list[int]], keep: int = 1, max_new_tokens: int = 0):
        """Run the suffixes after the shared prefix, left-padded; returns what decoding needs."""
        prefix = self._shared_prefix(seqs, keep)
        p = len(prefix)
        width = max(len(s) - p for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s) + p) + s[p:] for s in seqs], device=self.device)
        key_mask = torch.tensor([[0] * (width - len(s) + p) + [1] * (len(s) - p) for s in seqs], device=self.device)
        positions = p + (key_mask.cumsum(-1) - 1).clamp(min=0)
        extra = {
            "key_mask": key_mask,
            "shared_prefix": self._prefixes[prefix] if p else None,
            "suffix_kv": SuffixKV(self.model.config.num_hidden_layers, width + max_new_tokens),
        }
        with torch.inference_mode():
            # Only the last `keep` positions' logits are ever read; the full-vocabulary
            # projection of every prompt position would cost more than the whole prefill.
            out = self.model(input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=keep, **extra)
        extra["suffix_kv"].advance(width)
        return out.logits, positions[:, -1], extra

    # -- the Engine protocol -----------------------------------------------------------------
    def chat(self, conversations: list[Conversation], params: SamplingParams) -> list[str]:
        encoded = [self.encode_chat(c) for c in conversations]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[str] = [""] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, text in zip(idx, self._generate([encoded[i] for i in idx], params)):
                out[i] = text
        return out

    def _generate(self, seqs: list[list[int]], params: SamplingParams) -> list[str]:
        gen = torch.Generator().manual_seed(params.seed)
        logits, last_pos, extra = self._prefill(seqs, keep=1, max_new_tokens=params.max_new_tokens)
        logits = logits[:, -1]
        outputs: list[list[int]] = [[] for _ in seqs]
        active = list(range(len(seqs)))  # rows of `outputs` still in the batch, in batch order
        for _ in range(params.max_new_tokens):
            tokens = _sample(logits, params, gen).tolist()
            keep = []
            for row, (i, tok) in enumerate(zip(active, tokens)):
                if tok in self.eos_ids:
                    continue
                outputs[i].append(tok)
                if not (params.stop and self._hit_stop(outputs[i], params.stop)):
                    keep.append(row)
            if not keep or len(outputs[active[keep[0]]]) >= params.max_new_tokens:
                break
            if len(keep) < len(active):
                extra["suffix_kv"].select(torch.tensor(keep, device=self.device))
                extra["key_mask"] = extra["key_mask"][keep]
                last_pos = last_pos[keep]
                active = [active[r] for r in keep]
            extra["key_mask"] = torch.cat([extra["key_mask"], extra["key_mask"].new_ones(len(active), 1)], -1)
            last_pos = last_pos + 1
            step = torch.tensor([[outputs[i][-1]] for i in active], device=self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=step, position_ids=last_pos[:, None], use_cache=False, **extra).logits[
                    :, -1
                ]
            extra["suffix_kv"].advance(1)
        texts = []
        for toks in outputs:
            self.tokens_generated += len(toks)
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            for s in params.stop:
                text = text.split(s, 1)[0]
            texts.append(text.strip())
        return texts

    def _hit_stop(self, tokens: list[int], stops: list[str]) -> bool:
        tail = self.tokenizer.decode(tokens[-16:], skip_special_tokens=True)
        return any(s in tail for s in stops)

    def choice_logprobs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        choice_ids = [self._encode(c) for c in choices]
        if all(len(c) == 1 for c in choice_ids):
            # One forward pass per prompt: the choices are alternative next tokens.
            last = [lp[-1] for lp in self._forward_logprobs([self._encode(p) for p in prompts])]
            return [[row[c[0]].item() for c in choice_ids] for row in last]
        seqs = [self._encode(p) + c for p in prompts for c in choice_ids]
        spans = [len(c) for _ in prompts for c in choice_ids]
        totals = []
        for seq, lp, n in zip(seqs, self._forward_logprobs(seqs, keep=max(spans) + 1), spans):
            # lp covers the last positions; the last n tokens are the choice.
            picked = lp[-n - 1 : -1].gather(-1, torch.tensor(seq[-n:])[:, None])
            totals.append(picked.sum().item())
        k = len(choices)
        return [totals[i * k : (i + 1) * k] for i in range(len(prompts))]

    def _forward_logprobs(self, seqs: list[list[int]], keep: int = 1) -> list[torch.Tensor]:
        """Next-token log-probs at each sequence's last ``keep`` positions."""
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            logits, _, _ = self._prefill([seqs[i] for i in idx], keep)
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, i in enumerate(idx):
                out[i] = logprobs[row]
        return out
