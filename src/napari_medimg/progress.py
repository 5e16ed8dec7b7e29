"""Progress reporting and cancellation shared by every long-running core function.

Core functions take ``progress: ProgressCallback | None`` and call it as ``progress(done, total)``
between chunks of work.  A caller cancels by raising :class:`Cancelled` from inside the callback; the
core function lets it propagate and leaves no partial output behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]

__all__ = ["Cancelled", "ProgressCallback", "report", "throttled"]


class Cancelled(Exception):
    """Raised through a progress callback to stop a long-running operation."""


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given."""
    if progress is not None:
        progress(done, total)


def throttled(progress: ProgressCallback, per_second: float = 10.0) -> ProgressCallback:
    """Wrap ``progress`` so it forwards at most ``per_second`` updates, plus always the final one."""
    interval = 1.0 / per_second
    last = [float("-inf")]

    def forward(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= interval:
            last[0] = now
            progress(done, total)

    return forward
