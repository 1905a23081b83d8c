"""Score any record file with a preference model.

On `sl.jsonl` it scores the initial answer and every revision, which gives the paper's
"PM score vs number of revisions" curve (Bai et al. 2022, Fig. 5).
"""

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from constitutional.errors import UserError
from constitutional.records import read_records, write_atomic
from constitutional.report import revision_curve
from constitutional.stages.reward import PreferenceScorer


@dataclass
class ScoreOptions:
    reward_model: str
    data: Path
    out: Path | None = None
    batch_size: int = 8


def _answers(rec: dict, n: int, path: Path) -> tuple[list[dict], list[str]]:
    """The prompt and the answers to score, by record kind."""
    if "rounds" in rec and "initial" in rec:
        return rec["prompt"], [rec["initial"]] + [r["revision"] for r in rec["rounds"]]
    if "responses" in rec:
        return rec["prompt"], list(rec["responses"])
    if "chosen" in rec and "rejected" in rec:
        return rec["prompt"], [rec["chosen"][-1]["content"], rec["rejected"][-1]["content"]]
    if rec.get("messages") and rec["messages"][-1]["role"] == "assistant":
        return rec["messages"][:-1], [rec["messages"][-1]["content"]]
    raise UserError(f"{path}: record {n}: nothing to score (no rounds, responses, chosen/rejected or messages)")


def run_score(opts: ScoreOptions) -> dict:
    records = read_records(opts.data)
    scorer = PreferenceScorer.load(opts.reward_model, opts.batch_size)
    convs, owners = [], []
    for n, rec in enumerate(records, 1):
        prompt, answers = _answers(rec, n, opts.data)
        for a in answers:
            convs.append([*prompt, {"role": "assistant", "content": a}])
            owners.append(n - 1)
    scores = scorer.score(convs)
    for rec in records:
        rec["pm_scores"] = []
    for owner, s in zip(owners, scores):
        records[owner]["pm_scores"].append(s)
    for rec in records:
        rec["pm_score"] = rec["pm_scores"][0] if "chosen" in rec or "responses" in rec else rec["pm_scores"][-1]
    out = opts.out or opts.data.with_name(opts.data.stem + ".scored.jsonl")
    write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    stats = {"records": len(records), "out": str(out)}
    if records and "rounds" in records[0]:
        depth = min(len(r["pm_scores"]) for r in records)
        by_round = [[r["pm_scores"][k] for r in records] for k in range(depth)]
        means = [statistics.fmean(v) for v in by_round]
        sems = [statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0 for v in by_round]
        stats["mean_by_revision"] = means
        stats["curve_png"] = str(revision_curve(out.with_name(out.stem + ".revisions.png"), means, sems))
    return stats
