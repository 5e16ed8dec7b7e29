"""Run core functions off the main thread with a napari progress bar and cancellation.

Core functions report through ``progress(done, total)``; here that callback runs in the worker thread, checks
whether the user cancelled (and raises :class:`~napari_medimg.progress.Cancelled` if so), and forwards at most
ten updates per second to the main thread through a Qt signal, where the ``napari.utils.progress`` bar is
updated.  Results reach layers only in the ``on_done`` callback, which runs on the main thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from napari.qt.threading import FunctionWorker, thread_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QObject, Signal

from ..progress import Cancelled

__all__ = ["start_job"]


class _ProgressRelay(QObject):
    """Lives on the main thread; signals emitted from the worker are delivered here (queued)."""

    advanced = Signal(int, int)


def start_job(
    function: Callable,
    *args,
    description: str,
    on_done: Callable | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    **kwargs,
) -> FunctionWorker:
    """Start ``function(*args, progress=callback, **kwargs)`` in a thread_worker and return the worker.

    ``worker.quit()`` cancels: the next progress call raises ``Cancelled`` and ``on_done`` is not called.
    Errors other than a cancel go to ``on_error`` (main thread) or, without one, to napari's error handler.
    ``on_finished`` runs on the main thread after the job ended in any way (done, error or cancel); connect
    callbacks here rather than to the returned worker, which may already have finished.
    """
    relay = _ProgressRelay()
    bar = napari_progress(total=0, desc=description)
    state = {"last": 0.0, "worker": None}

    def callback(done: int, total: int) -> None:
        worker = state["worker"]
        if worker is not None and worker.abort_requested:
            raise Cancelled(description)
        now = time.monotonic()
        if done >= total or now - state["last"] >= 0.1:
            state["last"] = now
            relay.advanced.emit(int(done), int(total))

    def advance(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    relay.advanced.connect(advance)

    @thread_worker(start_thread=False, ignore_errors=True)
    def run():
        return function(*args, progress=callback, **kwargs)

    worker = run()
    state["worker"] = worker
    worker.relay = relay  # keep the relay alive as long as the worker

    def finish():
        bar.close()

    def errored(error: BaseException):
        if isinstance(error, Cancelled):
            return
        if on_error is None:
            raise error  # napari shows it as a notification with the traceback
        on_error(error)

    if on_done is not None:
        worker.returned.connect(on_done)
    worker.errored.connect(errored)
    worker.finished.connect(finish)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
