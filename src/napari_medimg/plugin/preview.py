"""Previews computed off the GUI thread: debounced, latest request wins, results applied on the main thread.

A widget asks for a preview with :meth:`BackgroundPreview.request` whenever a control or the slice changes.
After ``delay_ms`` without a new request the compute function runs in a napari ``thread_worker``; while it
runs, newer requests wait and only the latest is computed next (a slider dragged over ten values computes
two previews, not ten).  The ``apply`` callback gets the result on the main thread, from the Qt event loop,
never from inside a layer-list event, so it may add a preview layer safely.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.qt.threading import thread_worker
from qtpy.QtCore import QTimer

__all__ = ["BackgroundPreview"]


class BackgroundPreview:
    """Run ``compute(*args)`` in a worker after a quiet period and hand its result to ``apply(result)``."""

    def __init__(self, apply: Callable, on_error: Callable[[BaseException], None], delay_ms: int = 120):
        self.apply, self.on_error = apply, on_error
        self.worker = None
        self._pending: tuple | None = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._start)

    @property
    def busy(self) -> bool:
        """A preview is waiting or being computed."""
        return self.worker is not None or self._pending is not None

    def request(self, compute: Callable, *args) -> None:
        """Compute ``compute(*args)`` soon, replacing any request not yet started."""
        self._pending = (compute, args)
        self._timer.start()

    def cancel(self) -> None:
        """Drop the waiting request (a running one finishes, but its result is dropped)."""
        self._pending = None
        self._timer.stop()
        if self.worker is not None:
            self.worker.quit()
            self.worker.dropped = True

    def _start(self) -> None:
        if self.worker is not None or self._pending is None:
            return  # started again when the running preview finishes
        compute, args = self._pending
        self._pending = None

        @thread_worker(start_thread=False, ignore_errors=True)
        def run():
            return compute(*args)

        worker = run()
        worker.dropped = False
        worker.returned.connect(lambda result: None if worker.dropped else self.apply(result))
        worker.errored.connect(lambda error: None if worker.dropped else self.on_error(error))
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def _finished(self) -> None:
        self.worker = None
        if self._pending is not None:
            self._timer.start()
