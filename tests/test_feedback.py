import pytest

from constitutional import constitution as cl
from constitutional.feedback import ANSWER, Comparison, few_shot_block, judge, letter_probability, question
from constitutional.hhh import load_hhh


def test_letter_probabilities_are_normalised():
    for a, b in [(-0.1, -3.0), (-5.0, -5.0), (-40.0, -1.0)]:
        p = letter_probability(a, b)
        assert 0 < p < 1
        assert p + letter_probability(b, a) == pytest.approx(1.0)
    assert letter_probability(-1.0, -1.0) == 0.5


def test_question_follows_the_paper_format():
    q = question(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "help?"},
        ],
        "Which is kinder?",
        "one",
        "two",
    )
    assert q.startswith("Consider the following conversation between a human and an assistant:")
    assert "Human: hi\n\nAssistant: yo\n\nHuman: help?" in q
    assert "Which is kinder?\nOptions:\n(A) one\n(B) two" in q


def test_few_shot_block_answers_each_example_and_cot_keeps_only_reasoned_ones():
    examples = cl.load("anthropic-2022").few_shot.comparison
    plain = few_shot_block(examples, cot=False)
    assert plain.count(ANSWER) == len(examples) == 11
    cot = few_shot_block(examples, cot=True)
    assert cot.count(ANSWER) == sum(e.reasoning is not None for e in examples) == 6
    assert cot.count("Let's think step by step:") == 6


def test_cot_probabilities_are_clamped(tiny_engine):
    items = [Comparison([{"role": "user", "content": f"q{i}"}], "Which is better?", "a", "b") for i in range(4)]
    probs, reasoning = judge(tiny_engine, items, cot=True, clamp=(0.45, 0.55), max_new_tokens=8)
    assert all(0.45 <= p <= 0.55 for p in probs)
    assert all(isinstance(r, str) for r in reasoning)
    plain, none = judge(tiny_engine, items)
    assert none == [None] * 4 and all(0 < p < 1 for p in plain)


def test_hhh_items_parse_into_conversations_and_options():
    items = load_hhh()
    assert len(items) == 438
    assert sum(i.correct == "A" for i in items) == 228
    assert all(i.messages[-1]["role"] == "user" and i.a and i.b and i.a != i.b for i in items)
