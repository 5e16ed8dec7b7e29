"""Run core functions off the main thread with a napari progress bar and cancellation.

Core functions report through ``progress(done, total)``; here that callback runs in the worker thread, checks
whether the user cancelled (and raises :class:`~napari_medimg.progress.Cancelled` if so), and forwards at most
ten updates per second to the main thread through a Qt signal, where the ``napari.utils.progress`` bar is
updated.  Results reach layers only in the ``on_done`` callback, which runs on the main thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from napari.qt.threading import FunctionWorker, thread_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QEvent, QObject, QThreadPool, Signal

from ..progress import Cancelled

__all__ = ["start_job", "CLOSE_WAIT_MS"]

#: how long closing the window waits for a cancelled job to stop
CLOSE_WAIT_MS = 30_000


class _ProgressRelay(QObject):
    """Lives on the main thread; signals emitted from the worker are delivered here (queued)."""

    advanced = Signal(int, int)


class _CloseGuard(QObject):
    """Event filter on a main window: when it closes, cancel the job and wait for its thread to stop, so
    no result reaches the layers of a viewer that is gone (closing with a job running once aborted)."""

    def __init__(self, window, state):
        super().__init__(window)
        self.state = state

    def eventFilter(self, watched, event):  # noqa: N802 (Qt API)
        worker = self.state["worker"]
        if event.type() == QEvent.Type.Close and worker is not None and not self.state["closed"]:
            self.state["closed"] = True
            worker.quit()
            QThreadPool.globalInstance().waitForDone(CLOSE_WAIT_MS)
        return False


def start_job(
    function: Callable,
    *args,
    description: str,
    on_done: Callable | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    owner=None,
    **kwargs,
) -> FunctionWorker:
    """Start ``function(*args, progress=callback, **kwargs)`` in a thread_worker and return the worker.

    ``worker.quit()`` cancels: the next progress call raises ``Cancelled`` and ``on_done`` is not called.
    Errors other than a cancel go to ``on_error`` (main thread) or, without one, to napari's error handler.
    ``on_finished`` runs on the main thread after the job ended in any way (done, error or cancel); connect
    callbacks here rather than to the returned worker, which may already have finished.

    ``owner`` (a QWidget, typically the dock widget) ties the job to its window: closing the window
    cancels the job, waits for it to stop, and drops its result.
    """
    relay = _ProgressRelay()
    bar = napari_progress(total=0, desc=description)
    state = {"last": 0.0, "worker": None, "closed": False}

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
        state["worker"] = None
        guard = state.pop("guard", None)
        if guard is not None:
            with contextlib.suppress(RuntimeError):  # the window (the guard's parent) may be gone
                guard.parent().removeEventFilter(guard)

    def errored(error: BaseException):
        if isinstance(error, Cancelled) or state["closed"]:
            return
        if on_error is None:
            raise error  # napari shows it as a notification with the traceback
        on_error(error)

    def done(result):
        if not state["closed"]:
            on_done(result)

    def finished():
        if not state["closed"]:
            on_finished()

    if on_done is not None:
        worker.returned.connect(done)
    worker.errored.connect(errored)
    worker.finished.connect(finish)
    if on_finished is not None:
        worker.finished.connect(finished)
    if owner is not None:
        window = owner.window()
        state["guard"] = _CloseGuard(window, state)
        window.installEventFilter(state["guard"])
    worker.start()
    return worker
