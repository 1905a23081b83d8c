import json

import datasets
import pytest

from constitutional.errors import UserError
from constitutional.records import RecordWriter, export_records, read_records, write_atomic


def test_writer_skips_ids_already_written(tmp_path):
    out = tmp_path / "r.jsonl"
    with RecordWriter(out) as w:
        w.write([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    with RecordWriter(out) as w:
        assert w.done == {"a", "b"}
        w.write([{"id": "b", "v": 99}, {"id": "c", "v": 3}])
    assert [(r["id"], r["v"]) for r in read_records(out)] == [("a", 1), ("b", 2), ("c", 3)]


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b", "v": [1, 2')
    assert [r["id"] for r in read_records(out)] == ["a"]
    with RecordWriter(out) as w:
        assert w.done == {"a"}
        w.write([{"id": "b", "v": 3}])
    assert out.read_text() == '{"id": "a"}\n{"id": "b", "v": 3}\n'


def test_corrupt_middle_line_is_an_error_not_a_silent_loss(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"id": "a"}\ngarbage\n{"id": "c"}\n')
    with pytest.raises(UserError, match="line 2"):
        read_records(out)


def test_second_writer_on_same_file_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with RecordWriter(out), pytest.raises(UserError, match="another run"):
        RecordWriter(out)


def test_no_resume_starts_over(tmp_path):
    out = tmp_path / "r.jsonl"
    with RecordWriter(out) as w:
        w.write([{"id": "a"}])
    with RecordWriter(out, resume=False) as w:
        assert w.done == set()


def test_write_atomic_replaces_whole_file(tmp_path):
    p = tmp_path / "m.json"
    write_atomic(p, "old")
    write_atomic(p, "new")
    assert p.read_text() == "new"
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_export_loads_in_datasets_with_sft_view(tmp_path, fmt):
    src = tmp_path / "sl.jsonl"
    rec = {
        "id": "a",
        "prompt": [{"role": "user", "content": "q"}],
        "initial": "x",
        "rounds": [{"principle": "p", "critique": None, "revision": "y"}],
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y"}],
    }
    src.write_text(json.dumps(rec) + "\n")
    out = export_records(src, fmt, tmp_path / f"out.{fmt}")
    ds = datasets.Dataset.from_parquet(str(out)) if fmt == "parquet" else datasets.load_from_disk(str(out))
    row = ds[0]
    assert row["completion"] == [{"role": "assistant", "content": "y"}]
    assert row["prompt"] == [{"role": "user", "content": "q"}]
    assert row["messages"][-1]["content"] == "y"
