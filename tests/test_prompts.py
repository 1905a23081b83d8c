from collections import Counter

import pytest
from conftest import write_jsonl

from constitutional.errors import UserError
from constitutional.prompts import load_prompts


@pytest.mark.parametrize("name", ["red-team", "helpful"])
def test_builtin_sets_are_large_varied_and_split(name):
    everything = load_prompts(name)
    train, test = load_prompts(f"{name}:train"), load_prompts(f"{name}:test")
    assert len(everything) >= 300
    assert len(Counter(p.category for p in everything)) >= 10
    assert any(len(p.messages) >= 3 for p in everything), "some prompts are multi-turn"
    assert {p.id for p in train}.isdisjoint({p.id for p in test})
    assert len(train) + len(test) == len(everything)
    assert all(p.messages[-1]["role"] == "user" for p in everything)


def test_jsonl_takes_messages_or_prompt(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"messages": [{"role": "user", "content": "hi"}]},
            {"prompt": "plain string"},
            {
                "id": "x1",
                "prompt": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ],
                "category": "multi",
            },
        ],
    )
    got = load_prompts(path)
    assert [p.messages[-1]["content"] for p in got] == ["hi", "plain string", "c"]
    assert got[2].id == "x1" and got[2].category == "multi"
    assert load_prompts(path)[0].id == got[0].id, "content ids are stable"


def test_csv_named_column_and_txt(tmp_path):
    (tmp_path / "p.csv").write_text('q,other\nfirst,1\n"second, with comma",2\n')
    assert [p.messages[0]["content"] for p in load_prompts(f"{tmp_path}/p.csv:q")] == ["first", "second, with comma"]
    (tmp_path / "p.txt").write_text("one\n\ntwo\none\n")
    assert [p.messages[0]["content"] for p in load_prompts(tmp_path / "p.txt")] == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": oops}\n', "line 2: invalid JSON"),
        ("nofield.jsonl", b'{"text": "ok"}\n', "line 1: needs a 'messages' or a 'prompt' field"),
        ("empty.jsonl", b"", "no prompts found"),
        ("latin.txt", b"fine\ncaf\xe9\n", "line 2: not UTF-8"),
        ("p.csv", b"a,b\n1,2\n", "no column 'prompt'"),
        ("huge.txt", b"x" * 10_000_001, "over the 100,000 limit"),
        (
            "assistant_last.jsonl",
            b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n',
            "must end with a user turn",
        ),
    ],
)
def test_bad_prompt_files_name_file_and_line(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError) as e:
        load_prompts(tmp_path / name)
    assert expected in str(e.value) and name in str(e.value)


def test_missing_file_and_offline_hub_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such file"):
        load_prompts(tmp_path / "nope.jsonl")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="could not load the dataset"):
        load_prompts("hf:someone/some-prompts:train:prompt")
