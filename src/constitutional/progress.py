"""Progress bars for long stages: items done, ETA, and generated tokens per second."""

import time
from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


class _TokensPerSecond(ProgressColumn):
    def __init__(self, tokens: Callable[[], int]):
        super().__init__()
        self._tokens = tokens
        self._start = time.perf_counter()
        self._base = tokens()

    def render(self, task: Task) -> Text:
        rate = (self._tokens() - self._base) / max(time.perf_counter() - self._start, 1e-9)
        return Text(f"{rate:,.0f} tok/s", style="cyan")


def stage_progress(tokens: Callable[[], int] | None = None) -> Progress:
    columns: list = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if tokens is not None:
        columns.append(_TokensPerSecond(tokens))
    return Progress(*columns, transient=False)
