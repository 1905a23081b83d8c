"""Preferences from the critique stage itself: a revision is preferred to what it revised.

When the feedback model is near chance (the embedded 135M model is, see docs/feedback.md),
its labels are noise. The critique-revision records already carry a preference that needs no
judge: the final revision over the initial answer. This is how the Hugging Face CAI recipe
builds its preference data (Hugging Face blog, "Constitutional AI with Open LLMs", 2024). ``all_rounds``
adds every later-over-earlier pair. The output is `label`'s format, so `train-pm` and `dpo`
read it unchanged.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from constitutional.errors import UserError
from constitutional.records import RecordWriter, read_records, write_manifest


@dataclass
class RevisionPairsOptions:
    data: Path = Path("sl.jsonl")
    out: Path = Path("prefs.jsonl")
    all_rounds: bool = False
    p_chosen: float = 1.0
    resume: bool = False


def revision_pairs(rec: dict, all_rounds: bool, p_chosen: float) -> list[dict]:
    """Pairs (later, earlier) from one sl.jsonl record; identical texts make no pair."""
    answers = [rec["initial"]] + [r["revision"] for r in rec.get("rounds", [])]
    last = len(answers) - 1
    spans = [(i, j) for j in range(1, last + 1) for i in range(j)] if all_rounds else [(0, last)]
    out = []
    for i, j in spans:
        if j == i or answers[i].strip() == answers[j].strip():
            continue
        out.append(
            {
                "id": f"{rec['id']}:{j}>{i}",
                "prompt": rec["prompt"],
                "chosen": [{"role": "assistant", "content": answers[j]}],
                "rejected": [{"role": "assistant", "content": answers[i]}],
                "p_chosen": p_chosen,
                "source": {"kind": "revisions", "chosen_round": j, "rejected_round": i},
            }
        )
    return out


def run_revision_pairs(opts: RevisionPairsOptions) -> dict:
    if not 0.5 < opts.p_chosen <= 1.0:
        raise UserError(f"--p-chosen must be in (0.5, 1], got {opts.p_chosen}")
    records = read_records(opts.data)
    for n, rec in enumerate(records, 1):
        if "initial" not in rec or "prompt" not in rec or "id" not in rec:
            raise UserError(f"{opts.data}: record {n}: not a critique record (needs id, prompt, initial, rounds)")
    pairs = [p for rec in records for p in revision_pairs(rec, opts.all_rounds, opts.p_chosen)]
    if not pairs:
        raise UserError(f"{opts.data}: no record has a revision that differs from its initial answer")
    with RecordWriter(opts.out, resume=opts.resume) as writer:
        writer.write(pairs)
    unchanged = sum(1 for rec in records if not revision_pairs(rec, False, opts.p_chosen))
    stats = {"records": len(records), "pairs": len(pairs), "unrevised_records": unchanged}
    write_manifest(opts.out, stage="pairs-from-revisions", params=asdict(opts), stats=stats)
    return stats
