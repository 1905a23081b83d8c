import math

import pytest
import torch

from constitutional.engines import SamplingParams
from constitutional.messages import with_system

SHARED = "Here are some worked examples. " * 30  # long enough to be cached as a shared prefix
QUESTIONS = [
    "How do I boil an egg?",
    "Name a prime number.",
    "Why is the sky blue? Explain briefly please.",
    "hi",
    "Write a haiku about autumn leaves falling slowly.",
    "What is 2+2?",
]


def convs(prefix: str = ""):
    return [with_system([{"role": "user", "content": prefix + q}], "You are terse.") for q in QUESTIONS]


GREEDY = SamplingParams(max_new_tokens=12)


@pytest.mark.parametrize("prefix", ["", SHARED], ids=["no-prefix", "shared-prefix"])
def test_greedy_batched_output_equals_one_at_a_time(tiny_engine, prefix):
    batched = tiny_engine.chat(convs(prefix), GREEDY)
    tiny_engine._prefixes.clear()
    singles = [tiny_engine.chat([c], GREEDY)[0] for c in convs(prefix)]
    assert batched == singles
    assert all(batched)


def test_shared_prefix_is_cached_and_gives_the_same_answers(tiny_engine):
    cached = tiny_engine.chat(convs(SHARED), GREEDY)
    assert len(tiny_engine._prefixes) == 1
    assert len(next(iter(tiny_engine._prefixes))) > 64
    tiny_engine.prefix_cache = False
    tiny_engine._prefixes.clear()
    assert tiny_engine.chat(convs(SHARED), GREEDY) == cached


def test_sampling_is_seeded(tiny_engine):
    params = SamplingParams(temperature=1.0, max_new_tokens=12, seed=7)
    a = tiny_engine.chat(convs(), params)
    assert tiny_engine.chat(convs(), params) == a
    assert tiny_engine.chat(convs(), SamplingParams(temperature=1.0, max_new_tokens=12, seed=8)) != a


def test_stop_strings_cut_the_answer(tiny_engine):
    free = tiny_engine.chat(convs()[:1], SamplingParams(max_new_tokens=20))[0]
    stop = free[3:6]
    cut = tiny_engine.chat(convs()[:1], SamplingParams(max_new_tokens=20, stop=[stop]))[0]
    assert stop not in cut and free.startswith(cut)


def test_tokens_generated_counts_new_tokens(tiny_engine):
    before = tiny_engine.tokens_generated
    tiny_engine.chat(convs()[:2], SamplingParams(max_new_tokens=5))
    assert 2 <= tiny_engine.tokens_generated - before <= 10


def reference_logprob(engine, prompt: str, choice: str) -> float:
    """Sum of log-probs of the choice tokens, from one unpadded forward pass."""
    p, c = engine._encode(prompt), engine._encode(choice)
    with torch.no_grad():
        logits = engine.model(torch.tensor([p + c])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[len(p) - 1 + i, t].item() for i, t in enumerate(c))


@pytest.mark.parametrize("choices", [["A", "B"], [" yes please", " no thanks"]])
def test_choice_logprobs_match_an_unbatched_forward_pass(tiny_engine, choices):
    prompts = [SHARED + f"Question {i}: which is better? The answer is: (" for i in range(5)] + ["Short one: ("]
    got = tiny_engine.choice_logprobs(prompts, choices)
    for prompt, row in zip(prompts, got):
        for choice, value in zip(choices, row):
            assert value == pytest.approx(reference_logprob(tiny_engine, prompt, choice), abs=1e-4)
            assert value < 0


def test_single_token_choices_are_a_distribution_slice(tiny_engine):
    row = tiny_engine.choice_logprobs(["The answer is: ("], ["A", "B"])[0]
    assert 0 < math.exp(row[0]) + math.exp(row[1]) <= 1
