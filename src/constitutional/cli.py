"""The `cai` command: thin typer wrappers, one per stage, over the stages' public functions.

User mistakes (`UserError`) print one line and exit 2, without a traceback.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from constitutional import constitution as constitution_lib
from constitutional.engines import DEFAULT_MODEL
from constitutional.errors import UserError
from constitutional.messages import DEFAULT_SYSTEM

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Constitutional AI (Bai et al. 2022) end to end, for any model and any constitution.",
)
constitution_app = typer.Typer(no_args_is_help=True, help="Check and read constitutions.")
app.add_typer(constitution_app, name="constitution")
console = Console()
err_console = Console(stderr=True)

Model = Annotated[str, typer.Option("--model", "-m", help="embedded:NAME, a folder, a hub id, or openai:MODEL@URL")]


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@constitution_app.command("validate")
def constitution_validate(ref: Annotated[str, typer.Argument(help="a file or a preset name")]) -> None:
    """Check a constitution; errors name the file, the principle and the field."""
    c = constitution_lib.load(ref)
    fs = c.few_shot
    console.print(
        f"[green]ok[/green] {ref}: {c.name!r}, {len(c.principles)} principles, "
        f"{len(fs.critique_revision)} critique/revision and {len(fs.comparison)} comparison examples"
    )


@constitution_app.command("show")
def constitution_show(ref: Annotated[str, typer.Argument(help="a file or a preset name")]) -> None:
    """Print a constitution's principles as a table."""
    c = constitution_lib.load(ref)
    table = Table(title=f"{c.name}: {c.description}", show_lines=True)
    for col in ("id", "critique", "revision", "comparison"):
        table.add_column(col, overflow="fold")
    for p in c.principles:
        table.add_row(p.id, p.critique, p.revision, p.comparison)
    console.print(table)
    fs = c.few_shot
    console.print(f"few-shot: {len(fs.critique_revision)} critique/revision, {len(fs.comparison)} comparison")


@constitution_app.command("list")
def constitution_list() -> None:
    """List the built-in presets."""
    for name in constitution_lib.presets():
        console.print(name)


@app.command()
def critique(
    prompts: Annotated[
        str, typer.Option(help="red-team[:train|:test], helpful, FILE.jsonl|.txt, FILE.csv[:COL], hf:...")
    ] = "red-team:train",
    constitution: Annotated[str, typer.Option("--constitution", "-c", help="a file or a preset")] = "default",
    model: Model = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option(help="output JSONL")] = Path("sl.jsonl"),
    revisions: Annotated[int, typer.Option(min=0, help="critique/revision rounds")] = 4,
    critique: Annotated[bool, typer.Option("--critique/--no-critique", help="--no-critique revises directly")] = True,
    principles: Annotated[str | None, typer.Option(help="comma-separated principle ids to draw from")] = None,
    system: Annotated[str, typer.Option(help="system prompt; '' for none")] = DEFAULT_SYSTEM,
    few_shot: Annotated[int | None, typer.Option(min=0, help="worked examples to use (default all)")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    chunk: Annotated[int, typer.Option(min=1, help="prompts advanced together and saved as a unit")] = 64,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 200,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 1.0,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads")] = None,
) -> None:
    """SL-CAI data: initial answers, then N critique/revision rounds against sampled principles."""
    from constitutional.stages.critique import CritiqueOptions, run_critique

    opts = CritiqueOptions(
        prompts=prompts,
        constitution=constitution,
        model=model,
        out=out,
        revisions=revisions,
        critique=critique,
        principles=_split(principles),
        system=system or None,
        few_shot=few_shot,
        batch_size=batch_size,
        chunk=chunk,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        limit=limit,
        resume=resume,
        threads=threads,
    )
    stats = run_critique(opts)
    console.print(
        f"{out}: {stats['records']} records ({stats['new']} new), "
        f"{stats['tokens']:,} tokens in {stats['seconds']:.1f}s = {stats['tokens_per_s']:.1f} tok/s"
    )


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="a records JSONL file")],
    format: Annotated[str, typer.Option("--format", help="parquet or hf")] = "parquet",
    out: Annotated[Path | None, typer.Option(help="output path (default: beside FILE)")] = None,
) -> None:
    """Write records as Parquet or a `datasets` folder, with TRL's prompt/completion view."""
    from constitutional.records import export_records

    target = out or file.with_suffix(".parquet" if format == "parquet" else ".hf")
    console.print(f"wrote {export_records(file, format, target)}")


def main() -> None:
    try:
        app()
    except UserError as e:
        err_console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)
