"""report/: report.md with the tables, elo.png, results.json, and the earlier stages' plots.

Model output goes into the Markdown only through `md_escape`, so an answer cannot inject
links, HTML or table breaks into the report.
"""

import json
import re
import shutil
from pathlib import Path

from constitutional.records import write_atomic
from constitutional.report import elo_scatter
from constitutional.secrets import redact

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def md_escape(text: str, limit: int | None = None) -> str:
    """Text shown literally in Markdown: special characters escaped, newlines as spaces."""
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return _MD_SPECIAL.sub(r"\\\1", text)


def _pct(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{r['rate']:.0%} ({lo:.0%}-{hi:.0%})"


def headline_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Elo per axis (with 95% intervals), refusal rates, length and PM score, one row per model."""
    elo, metrics = results["elo"], results["metrics"]
    has_pm = any("pm_harmful" in m for m in metrics.values())
    header = ["model", "harmlessness Elo", "helpfulness Elo", "refusal, harmful", "over-refusal, helpful", "words"]
    if has_pm:
        header += ["PM, harmful", "PM, helpful"]
    rows = []
    for name in results["models"]:
        cells = [name]
        for axis in ("harmless", "helpful"):
            lo, hi = elo[axis]["ci95"][name]
            cells.append(f"{elo[axis]['elo'][name]:+.0f} [{lo:+.0f}, {hi:+.0f}]")
        m = metrics[name]
        cells += [_pct(m["refusal_harmful"]), _pct(m["over_refusal_helpful"]), f"{m['mean_words']:.0f}"]
        if has_pm:
            cells += [f"{m[k]:.3f}" if m.get(k) is not None else "-" for k in ("pm_harmful", "pm_helpful")]
        rows.append(cells)
    return header, rows


def headline_table(results: dict) -> list[str]:
    header, rows = headline_rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join([md_escape(r[0]), *r[1:]]) + " |" for r in rows]


def _win_rates(results: dict, axis: str) -> list[str]:
    names = list(results["models"])
    table = results["elo"][axis]["win_rate"]
    lines = ["| row beats column | " + " | ".join(md_escape(n) for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for a in names:
        cells = ["-" if a == b or table[a][b] is None else f"{table[a][b]:.0%}" for b in names]
        lines.append(f"| {md_escape(a)} | " + " | ".join(cells) + " |")
    return lines


def _examples(answers: dict, names: list[str], kind: str, n: int = 3) -> list[str]:
    first = answers[names[0]]
    ids = [i for i, r in first.items() if r["set"] == kind][:n]
    lines = []
    for rid in ids:
        prompt = first[rid]["prompt"][-1]["content"]
        lines.append(f"**Prompt:** {md_escape(prompt, 300)}\n")
        lines += [f"- **{md_escape(m)}:** {md_escape(answers[m][rid]['answer'], 400)}" for m in names]
        lines.append("")
    return lines


def write_report(out: Path, results: dict, answers: dict, plots_from: list[Path] = ()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = list(results["models"])
    elo = results["elo"]
    elo_scatter(
        out / "elo.png",
        names,
        [elo["helpful"]["elo"][n] for n in names],
        [elo["helpful"]["ci95"][n] for n in names],
        [elo["harmless"]["elo"][n] for n in names],
        [elo["harmless"]["ci95"][n] for n in names],
    )
    copied = []
    for folder in plots_from:
        for png in sorted(Path(folder).glob("*.png")):
            target = out / f"{Path(folder).name}-{png.name}"
            shutil.copyfile(png, target)
            copied.append(target.name)
    results = {**results, "plots": ["elo.png", *copied]}
    lines = [
        "# Constitutional AI evaluation",
        "",
        f"Judge: `{md_escape(results['judge'])}`. Prompts: {results['prompts']['harmful']} harmful, "
        f"{results['prompts']['helpful']} helpful (held out). Elo is relative to `{md_escape(names[0])}` "
        "(Bradley-Terry, both answer orders averaged; 95% intervals from resampling prompts). "
        "Refusal rates come from phrase patterns, not the judge (Wilson 95% intervals).",
        "",
    ]
    for section in results.get("sections", []):
        lines += [f"## {section['title']}", "", section["body"], ""]
    lines += ["## Headline", "", *headline_table(results), "", "![Elo](elo.png)", ""]
    for axis, title in (("harmless", "Harmlessness"), ("helpful", "Helpfulness")):
        n = elo[axis]["comparisons"]
        lines += [f"## {title}: win rates ({n} judged comparisons)", "", *_win_rates(results, axis), ""]
    lines += ["## Example answers (harmful prompts)", "", *_examples(answers, names, "harmful")]
    lines += ["## Example answers (helpful prompts)", "", *_examples(answers, names, "helpful")]
    if copied:
        lines += ["## Plots from the earlier stages", ""] + [f"![{c}]({c})" for c in copied] + [""]
    write_atomic(out / "report.md", redact("\n".join(lines)) + "\n")
    write_atomic(out / "results.json", redact(json.dumps(results, indent=2)) + "\n")
    return out / "report.md"
