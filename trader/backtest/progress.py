"""A sweep's progress bar: chunks done, combinations evaluated, their rate and the time left (rich)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["SweepProgress"]


class SweepProgress:
    """A rich progress bar on stderr over a sweep's combinations; silent when disabled (``--json``)."""

    def __init__(self, combos: int, *, enabled: bool = True) -> None:
        self.total = combos
        self.combos = 0
        self.chunks = 0
        self.started = time.perf_counter()
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("sweep"), BarColumn(bar_width=24), MofNCompleteColumn(),
                TextColumn("combos  {task.fields[chunks]} chunks  {task.fields[rate]}/s"),
                TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False)
            self._task = self._progress.add_task("sweep", total=combos, chunks=0, rate="-")

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, *, chunks: int = 0, combos: int = 0) -> None:
        """Count ``chunks`` more chunks done and ``combos`` more combinations settled."""
        self.chunks += chunks
        self.combos += combos
        if self._progress is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self._progress.update(self._task, advance=combos, chunks=self.chunks,
                                  rate=f"{self.combos / elapsed:.1f}")
