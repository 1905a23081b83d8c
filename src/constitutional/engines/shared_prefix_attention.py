"""Attention over one shared prefix plus per-row suffixes, without copying the prefix.

Every critique and revision prompt starts with the same few-shot examples (about 1,000
tokens for the built-in constitutions). Copying their KV cache into each of 32 rows makes
every decode step read 32 copies of it, and that memory traffic, not arithmetic, is what
limits a CPU. Here the prefix is kept once, with batch size 1, and each query row attends to
it and to its own suffix in one softmax. This is the "cascade" or "shared-prefix" attention
of Hydragen (Juravsky et al. 2024) and FlashInfer, in plain torch.

It is registered with transformers' AttentionInterface so that unmodified models call it.
It takes over only when the caller passes ``key_mask``; otherwise it is ordinary SDPA.
"""

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "cai_shared_prefix"


class SuffixKV:
    """Preallocated per-layer K/V for the rows' own tokens, written in place.

    A growing `DynamicCache` concatenates, copying the whole cache at every step; on a CPU
    that copy cost more than the matmuls. Here each step writes one slot.
    """

    def __init__(self, n_layers: int, capacity: int):
        self.capacity = capacity
        self.length = 0
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is None:
            b, kh, _, d = key.shape
            self.keys[layer] = key.new_empty(b, kh, self.capacity, d)
            self.values[layer] = value.new_empty(b, kh, self.capacity, d)
        end = self.length + key.shape[2]
        self.keys[layer][:, :, self.length : end] = key
        self.values[layer][:, :, self.length : end] = value
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the batch (finished rows leave)."""
        self.keys = [k[rows] if k is not None else None for k in self.keys]
        self.values = [v[rows] if v is not None else None for v in self.values]


def _prefill_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor,
    shared_prefix: list[tuple[torch.Tensor, torch.Tensor]] | None,
    layer: int,
    scale: float,
) -> torch.Tensor:
    """Many queries per row: a fused SDPA kernel over [prefix; suffix] keys.

    With hundreds of queries per row the score matrix against the prefix is what costs, so
    it must never be materialised; copying the prefix's keys into each row once per layer
    is cheap beside it, unlike at every decode step.
    """
    b, t = query.shape[0], query.shape[2]
    if shared_prefix is not None:
        pk, pv = shared_prefix[layer]
        key = torch.cat([pk.expand(b, -1, -1, -1), key], dim=2)
        value = torch.cat([pv.expand(b, -1, -1, -1), value], dim=2)
        allowed = torch.cat([allowed.new_ones(b, t, pk.shape[2]), allowed], dim=-1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=allowed[:, None], scale=scale, enable_gqa=True
    )
    return out.transpose(1, 2).contiguous()


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    key_mask: torch.Tensor | None = None,
    suffix_kv: SuffixKV | None = None,
    shared_prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """query (B, H, T, D), the new tokens' key/value (B, KH, T, D), key_mask (B, S) over the suffix."""
    if key_mask is None or suffix_kv is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    key, value = suffix_kv.append(module.layer_idx, key, value)
    b, h, t, d = query.shape
    kh, s = key.shape[1], key.shape[2]
    g = h // kh  # query heads per KV head; head i reads KV head i // g, as in repeat_kv
    scale = scaling if scaling is not None else d**-0.5
    q = query.reshape(b, kh, g * t, d)

    # Suffix keys: causal, minus left padding; each query may always see itself, so that a
    # padding row never has an empty softmax (its output is never read).
    q_pos = torch.arange(s - t, s, device=query.device)
    k_pos = torch.arange(s, device=query.device)
    allowed = (k_pos[None, :] <= q_pos[:, None])[None] & key_mask[:, None, :].bool()
    allowed |= k_pos[None, None, :] == q_pos[None, :, None]
    if t > 1:
        return _prefill_attention(query, key, value, allowed, shared_prefix, module.layer_idx, scale), None
    scores = ((q @ key.transpose(-1, -2)).view(b, kh, g, t, s) * scale).float()
    scores = scores.masked_fill(~allowed[:, None, None], float("-inf"))
    top = scores.amax(-1, keepdim=True)

    if shared_prefix is not None:
        pk, pv = shared_prefix[module.layer_idx]  # (1, KH, P, D)
        p = pk.shape[2]
        # Fold the batch into the rows of one matmul per KV head: the prefix is read once.
        qf = q.permute(1, 0, 2, 3).reshape(kh, b * g * t, d)
        prefix_scores = ((qf @ pk[0].transpose(-1, -2)).view(kh, b, g, t, p).permute(1, 0, 2, 3, 4) * scale).float()
        top = torch.maximum(top, prefix_scores.amax(-1, keepdim=True))

    # One softmax over [prefix; suffix], computed in two parts against a common maximum.
    weights = torch.exp(scores - top)
    denom = weights.sum(-1, keepdim=True)
    out = weights.to(value.dtype).reshape(b, kh, g * t, s) @ value
    if shared_prefix is not None:
        prefix_weights = torch.exp(prefix_scores - top)
        denom = denom + prefix_weights.sum(-1, keepdim=True)
        pw = prefix_weights.to(value.dtype).permute(1, 0, 2, 3, 4).reshape(kh, b * g * t, p)
        out = out + (pw @ pv[0]).view(kh, b, g * t, d).permute(1, 0, 2, 3)
    out = out / denom.reshape(b, kh, g * t, 1).to(out.dtype)
    return out.view(b, h, t, d).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, shared_prefix_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)
