"""Progress for many jobs from library code: ``gridlib.progress(jobs)`` (docs/api.md §1.3).

``cluster.as_completed(jobs, progress=True)`` yields jobs as they finish and
keeps a display of how many are done; ``gridlib.progress(jobs)`` waits for
them all with that display and returns them.  Both take gridlib ``Job``\\ s;
``progress`` also takes ``concurrent.futures.Future``\\ s (``GridExecutor``).

The display fits where the program runs:

- a terminal: a rich progress bar on stderr (done of all, failed, rate, time);
- anything else -- a notebook cell, a log file, CI: one plain line on stderr
  at each tenth of the way (at most one a second) and a last one at the end,
  like joblib's ``verbose``.  Plain lines need nothing installed and read
  the same in a notebook, a terminal multiplexer or a captured log.

``GRIDLIB_PROGRESS=bar|lines|off`` chooses for every display of the process.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import IO, Any, Protocol

from gridlib.job import Job, JobStatus

__all__ = ["progress", "ProgressDisplay", "Tracked", "display"]

_STEPS = 10  # plain lines: one per tenth of the way
_MIN_INTERVAL = 1.0  # ... and at most one a second (the last line always comes)


class ProgressDisplay(Protocol):
    """Where progress goes: told of each job as it becomes final, and at the end."""

    def advance(self, failed: bool) -> None: ...

    def close(self) -> None: ...


class _Lines:
    """One plain line at each tenth of the way and at the end (notebooks, logs, CI)."""

    def __init__(self, total: int, label: str, stream: IO[str]) -> None:
        self.total, self.label, self.stream = total, label, stream
        self.done = self.failed = 0
        self.start = self._last = time.monotonic()
        self._next = self._step_after(0)

    def _step_after(self, done: int) -> int:
        step = max(1, -(-self.total // _STEPS))
        return (done // step + 1) * step

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if self.done >= self._next and self.done < self.total and now - self._last >= _MIN_INTERVAL:
            self._line(now)
        if self.done >= self._next:
            self._next = self._step_after(self.done)

    def _line(self, now: float) -> None:
        self._last = now
        elapsed = now - self.start
        failed = f", {self.failed} failed" if self.failed else ""
        self.stream.write(f"[gridlib] {self.label}: {self.done}/{self.total} done{failed} "
                          f"({elapsed:.1f} s)\n")
        self.stream.flush()

    def close(self) -> None:
        self._line(time.monotonic())


class _Bar:
    """A rich progress bar on a terminal."""

    def __init__(self, total: int, label: str, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.failed = 0
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TaskProgressColumn(), TextColumn("{task.fields[failed]}"),
                                  TimeElapsedColumn(), TimeRemainingColumn(),
                                  console=Console(file=stream), transient=False)
        self._task = self._progress.add_task(label, total=total, failed="")
        self._progress.start()

    def advance(self, failed: bool) -> None:
        self.failed += failed
        self._progress.update(self._task, advance=1,
                              failed=f"[red]{self.failed} failed[/]" if self.failed else "")

    def close(self) -> None:
        self._progress.stop()


class _Off:
    def advance(self, failed: bool) -> None:
        pass

    def close(self) -> None:
        pass


def display(total: int, label: str = "jobs", stream: IO[str] | None = None,
            kind: str | None = None) -> ProgressDisplay:
    """The display for ``total`` jobs: ``kind`` "bar", "lines" or "off"; by default
    ``GRIDLIB_PROGRESS``, else a bar on a terminal and lines elsewhere."""
    stream = stream or sys.stderr
    kind = kind or os.environ.get("GRIDLIB_PROGRESS", "").strip().lower() or (
        "bar" if _is_terminal(stream) else "lines")
    if kind == "off":
        return _Off()
    if kind == "bar":
        return _Bar(total, label, stream)
    if kind == "lines":
        return _Lines(total, label, stream)
    raise ValueError(f"progress display must be 'bar', 'lines' or 'off', not {kind!r} "
                     f"(GRIDLIB_PROGRESS)")


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _failed(item: Any) -> bool:
    if isinstance(item, Job):
        return item.status is not JobStatus.Finished
    if isinstance(item, concurrent.futures.Future):
        return item.cancelled() or item.exception() is not None
    return False


class Tracked(Iterator[Any], AsyncIterator[Any]):
    """Items of ``finished`` (yielded as they become final, by ``for`` or ``async for``),
    each counted on a display; the display ends with the iteration (or its error)."""

    def __init__(self, finished: Any, total: int, label: str = "jobs",
                 stream: IO[str] | None = None) -> None:
        self._finished = finished
        self._display: ProgressDisplay | None = display(total, label, stream)
        if total == 0:
            self._end()

    def _end(self) -> None:
        if self._display is not None:
            self._display.close()
            self._display = None

    def _count(self, item: Any) -> Any:
        if self._display is not None:
            self._display.advance(_failed(item))
        return item

    def __iter__(self) -> Tracked:
        return self

    def __next__(self) -> Any:
        try:
            return self._count(next(self._finished))
        except BaseException:  # StopIteration (all done), TimeoutError, KeyboardInterrupt
            self._end()
            raise

    def __aiter__(self) -> Tracked:
        return self

    async def __anext__(self) -> Any:
        try:
            return self._count(await self._finished.__anext__())
        except BaseException:
            self._end()
            raise


def progress(jobs: Iterable[Any], label: str = "jobs", timeout: float | None = None,
             stream: IO[str] | None = None) -> list[Any]:
    """Show progress until every job (or future) is final; returns them in the order given.

    ``jobs``: gridlib ``Job``\\ s (``cluster.submit``) or ``concurrent.futures.Future``\\ s
    (``GridExecutor.submit``).  With ``timeout``, ``TimeoutError`` comes once that many
    seconds have passed and some are still unfinished (the display shows how far it got).
    """
    items = list(jobs)
    if all(isinstance(j, Job) for j in items):
        from gridlib.completion import AsCompleted

        finished: Iterator[Any] = AsCompleted(items, timeout)
    elif all(isinstance(f, concurrent.futures.Future) for f in items):
        finished = concurrent.futures.as_completed(items, timeout)
    else:
        raise TypeError("progress() takes gridlib Jobs or concurrent.futures Futures")
    for _ in Tracked(finished, len(dict.fromkeys(items)), label, stream):
        pass
    return items
