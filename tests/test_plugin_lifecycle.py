"""Closing the viewer while a job runs: the job is cancelled, waited for, and its result dropped."""

import time

from napari_medimg.plugin.widgets._common import JobWidget


class _SlowWidget(JobWidget):
    def __init__(self, viewer):
        super().__init__(viewer)
        self.results = []
        self.steps_done = 0
        self._finish_layout()

    def apply(self, *_):
        def slow(progress=None):
            for step in range(600):  # 60 s unless cancelled
                time.sleep(0.1)
                self.steps_done = step
                progress(step, 600)
            return "finished"

        self.run_job(slow, description="slow job", on_done=self.results.append)


def test_closing_the_viewer_cancels_and_waits_for_a_running_job(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _SlowWidget(viewer)
    viewer.window.add_dock_widget(widget, name="slow")
    widget.apply()
    worker = widget.worker
    qtbot.waitUntil(lambda: widget.steps_done >= 2, timeout=10_000)
    started = time.monotonic()
    viewer.close()
    assert time.monotonic() - started < 5  # cancelled at the next progress call, not run to the end
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5_000)
    qtbot.wait(100)  # let the worker's queued finished signals run
    assert widget.results == []  # no result delivered to a closed viewer
    assert widget.steps_done < 100
