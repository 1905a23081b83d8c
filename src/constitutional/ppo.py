"""A compact PPO for language models, the RL algorithm of Bai et al. 2022 (section 4).

TRL 1.16 no longer ships a PPO trainer, so this is ours, kept small enough to read in one
sitting. One step is:

1. rollout: the policy samples one answer per prompt; the preference model scores it;
2. per-token rewards: ``-kl_coef * (log pi - log pi_ref)`` on every answer token, plus
   the PM score on the last one (Stiennon et al. 2020; Ouyang et al. 2022);
3. advantages by GAE (Schulman et al. 2016) from a value head on the policy's last
   hidden state, whitened over the batch;
4. ``epochs`` passes of clipped-ratio policy loss plus clipped value loss over minibatches.

The pure functions (`kl_rewards`, `gae`, `policy_loss`, `value_loss`) carry the maths and
are tested on hand-computed examples.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PPOConfig:
    steps: int = 100
    prompts_per_step: int = 8
    minibatch_size: int = 4
    epochs: int = 4
    lr: float = 1e-6
    kl_coef: float = 0.05
    clip: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    max_new_tokens: int = 128
    temperature: float = 1.0
    max_grad_norm: float = 1.0
    seed: int = 0


def kl_rewards(
    score: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: a KL penalty on every token, the sequence score on the last one.

    Returns (rewards, kl), both [batch, tokens], zero where ``mask`` is 0.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(score)), last] += score
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns; the value after the last token is 0."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate objective (as a loss) and the share of tokens that were clipped."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """Clipped value loss: a value may not move more than ``clip`` from its rollout estimate."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


class PolicyWithValue(nn.Module):
    """A causal LM and a scalar value head on its last hidden state (one forward for both)."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=next(policy.parameters()).dtype)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
        out = self.policy(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=True
        )
        return out.logits, self.value_head(out.hidden_states[-1]).squeeze(-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, prompt_len: int, temperature: float) -> torch.Tensor:
    """Log-probs of the answer tokens (positions ``prompt_len`` onwards) under ``logits``."""
    step_logits = logits[:, prompt_len - 1 : -1].float() / temperature
    return torch.gather(F.log_softmax(step_logits, -1), 2, tokens[:, prompt_len:, None]).squeeze(-1)


@dataclass
class Rollout:
    input_ids: torch.Tensor  # [B, P + T], prompts left-padded, answers right-padded
    attention_mask: torch.Tensor
    prompt_len: int
    mask: torch.Tensor  # [B, T], 1 on answer tokens up to and including EOS
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    score: torch.Tensor
    kl: torch.Tensor


class PPO:
    """The training loop: ``step(prompts)`` does one rollout and its PPO epochs."""

    def __init__(
        self,
        model: PolicyWithValue,
        tokenizer,
        reward: Callable[[list, list], list[float]],
        config: PPOConfig,
        ref_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ):
        self.model, self.tokenizer, self.reward, self.cfg = model, tokenizer, reward, config
        self.ref_logits = ref_logits
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)

    @torch.no_grad()
    def rollout(self, prompts: list[list[dict]]) -> tuple[Rollout, list[str]]:
        cfg, tok = self.cfg, self.tokenizer
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prompt_len = enc.input_ids.shape[1]
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        self.model.eval()
        seq = self.model.policy.generate(
            **enc,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=cfg.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        answer = seq[:, prompt_len:]
        is_eos = answer == tok.eos_token_id
        # Answer tokens up to and including the first EOS; everything after is padding.
        mask = (torch.cumsum(is_eos, 1) - is_eos.long() == 0).float()
        attention_mask = torch.cat([enc.attention_mask, mask.long()], 1)
        completions = tok.batch_decode(
            answer * mask.long() + tok.pad_token_id * (1 - mask.long()), skip_special_tokens=True
        )
        score = torch.tensor(
            self.reward(prompts, [[{"role": "assistant", "content": c}] for c in completions]),
            dtype=torch.float32,
            device=self.device,
        )
        logits, values = self.model(seq, attention_mask)
        logprobs = token_logprobs(logits, seq, prompt_len, cfg.temperature)
        ref = token_logprobs(self.ref_logits(seq, attention_mask), seq, prompt_len, cfg.temperature)
        values = values[:, prompt_len - 1 : -1].float() * mask
        rewards, kl = kl_rewards(score, logprobs, ref, mask, cfg.kl_coef)
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        advantages = whiten(advantages, mask)
        roll = Rollout(seq, attention_mask, prompt_len, mask, logprobs, values, advantages, returns, score, kl)
        return roll, completions

    def step(self, prompts: list[list[dict]]) -> dict:
        cfg = self.cfg
        roll, _ = self.rollout(prompts)
        self.model.train()
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clipfrac": []}
        n = roll.input_ids.shape[0]
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size].to(self.device)
                logits, values = self.model(roll.input_ids[idx], roll.attention_mask[idx])
                logprobs = token_logprobs(logits, roll.input_ids[idx], roll.prompt_len, cfg.temperature)
                values = values[:, roll.prompt_len - 1 : -1].float()
                mask = roll.mask[idx]
                pg, clipfrac = policy_loss(logprobs, roll.logprobs[idx], roll.advantages[idx], mask, cfg.clip)
                vf = value_loss(values, roll.values[idx], roll.returns[idx], mask, cfg.value_clip)
                loss = pg + cfg.value_coef * vf
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                stats["policy_loss"].append(pg.item())
                stats["value_loss"].append(vf.item())
                stats["clipfrac"].append(clipfrac.item())
        return {
            "reward": roll.score.mean().item(),
            "kl": masked_mean(roll.kl, roll.mask).item(),
            "response_length": roll.mask.sum(1).mean().item(),
            **{k: sum(v) / len(v) for k, v in stats.items()},
        }
