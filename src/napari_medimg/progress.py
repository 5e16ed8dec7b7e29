"""Progress reporting and cancellation shared by every long-running core function.

Core functions take ``progress: ProgressCallback | None`` and call it as ``progress(done, total)``
between chunks of work.  A caller cancels by raising :class:`Cancelled` from inside the callback; the
core function lets it propagate and leaves no partial output behind.  A function that runs several
sub-steps forwards each one's progress into its share of the whole with :func:`sub_progress`.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]

__all__ = ["Cancelled", "ProgressCallback", "report", "sub_progress", "SUB_PROGRESS_STEPS"]

#: ``total`` that :func:`sub_progress` reports to the outer callback
SUB_PROGRESS_STEPS = 1000


class Cancelled(Exception):
    """Raised through a progress callback to stop a long-running operation."""


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given.

    Parameters
    ----------
    progress : callable or None
        The callback.
    done, total : int
        Work done so far and the whole.
    """
    if progress is not None:
        progress(done, total)


def sub_progress(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback | None:
    """A callback that maps a sub-step's ``(done, total)`` onto the fraction ``[start, stop]`` of the whole.

    The outer callback receives ``(n, SUB_PROGRESS_STEPS)`` with ``n`` rising from ``start`` to ``stop``
    (fractions of the whole, 0 … 1).  :class:`Cancelled` raised by the outer callback propagates.

    Parameters
    ----------
    progress : callable or None
        The outer callback; None gives None (nothing to report).
    start, stop : float
        The sub-step's share of the whole, ``0 <= start <= stop <= 1``.

    Returns
    -------
    callable or None
        The forwarding callback for the sub-step.

    Raises
    ------
    ValueError
        When the range is not inside [0, 1] or ``start`` is above ``stop``.

    Examples
    --------
    >>> seen = []
    >>> half = sub_progress(lambda done, total: seen.append((done, total)), 0.5, 1.0)
    >>> half(1, 2)
    >>> seen
    [(750, 1000)]
    """
    if not 0.0 <= start <= stop <= 1.0:
        raise ValueError(f"a sub-range needs 0 <= start <= stop <= 1, got {start}, {stop}")
    if progress is None:
        return None

    def forward(done: int, total: int) -> None:
        fraction = min(1.0, max(0.0, done / total)) if total > 0 else 1.0
        progress(int(round(SUB_PROGRESS_STEPS * (start + (stop - start) * fraction))), SUB_PROGRESS_STEPS)

    return forward
