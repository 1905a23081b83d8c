import json
import subprocess

import pytest

from constitutional import constitution as cl
from constitutional.errors import UserError

GOOD = """\
name: tiny
principles:
  - id: kind
    critique: Say how the answer is unkind.
    revision: Rewrite it kindly.
    comparison: Which answer is kinder?
  - id: honest
    critique: Say how the answer is dishonest.
    revision: Rewrite it honestly.
    comparison: Which answer is more honest?
"""


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(path) -> str:
    with pytest.raises(UserError) as e:
        cl.load(path)
    return str(e.value)


def test_presets_load_with_their_few_shot_examples():
    assert {"anthropic-2022", "default", "socratic-tutor"} <= set(cl.presets())
    paper = cl.load("anthropic-2022")
    assert len(paper.principles) == 16
    assert len(paper.few_shot.critique_revision) == 5
    assert len(paper.few_shot.comparison) == 11
    assert sum(ex.reasoning is not None for ex in paper.few_shot.comparison) == 6
    assert len(cl.load("default").principles) >= 12
    assert len(cl.load("socratic-tutor").principles) >= 8


def test_paper_preset_keeps_the_paper_wording():
    paper = cl.load("anthropic-2022")
    assert paper.principles[0].critique.startswith("Identify specific ways in which the assistant's last response")
    assert not paper.principles[0].comparison.endswith("Options:")


def test_same_constitution_loads_from_yaml_json_and_toml(tmp_path):
    y = cl.load(write(tmp_path, GOOD))
    data = y.model_dump(mode="json")
    j = cl.load(write(tmp_path, json.dumps(data), "c.json"))
    toml_text = 'name = "tiny"\n' + "".join(
        f'[[principles]]\nid = "{p["id"]}"\ncritique = "{p["critique"]}"\n'
        f'revision = "{p["revision"]}"\ncomparison = "{p["comparison"]}"\n'
        for p in data["principles"]
    )
    t = cl.load(write(tmp_path, toml_text, "c.toml"))
    assert y.fingerprint() == j.fingerprint() == t.fingerprint()


def test_missing_field_names_file_principle_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("    revision: Rewrite it honestly.\n", ""))
    msg = error_of(path)
    assert str(path) in msg and "'honest'" in msg and "revision" in msg


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, GOOD + "  - id: [unclosed\n")
    msg = error_of(path)
    assert str(path) in msg and "line 12" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nprinciples: []\n", "at least 1"),
        (GOOD.replace("id: honest", "id: kind"), "duplicate principle id 'kind'"),
        (GOOD.replace("name: tiny", "name: [1, 2]"), "field 'name'"),
        (GOOD + "colour: blue\n", "colour"),
        (GOOD.replace("    comparison: Which answer is kinder?\n", "    comparison: ''\n"), "comparison"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_malformed_constitutions_get_one_clear_error(tmp_path, text, expected):
    assert expected in error_of(write(tmp_path, text))


def test_subset_keeps_named_principles_and_rejects_unknown():
    c = cl.load("default")
    ids = [p.id for p in c.principles[:2]]
    assert [p.id for p in c.subset(ids).principles] == ids
    with pytest.raises(UserError, match="no principle 'nope'"):
        c.subset(["nope"])


def test_cli_reports_errors_without_traceback(tmp_path):
    path = write(tmp_path, "name: x\nprinciples: []\n")
    r = subprocess.run(["cai", "constitution", "validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert str(path) in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_cli_show_prints_every_principle():
    r = subprocess.run(
        ["cai", "constitution", "show", "socratic-tutor"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": __import__("os").environ["PATH"]},
    )
    assert r.returncode == 0
    for p in cl.load("socratic-tutor").principles:
        assert p.id in r.stdout


def test_unknown_preset_names_itself_and_the_known_ones():
    r = subprocess.run(["cai", "constitution", "validate", "harmles"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    said = " ".join(r.stderr.split())
    assert "harmles: no such file, and no preset of that name" in said and "anthropic-2022" in said
