"""Orthogonal views responsiveness on a 512×512×300 volume: slice update time while dragging the crosshair.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_views.py [--json]

A drag is simulated as napari delivers it: one mouse move every ``--gap-ms`` on the main thread, through the
dock's own drag callback (:meth:`_View._on_drag`, the code a real drag runs: moves are coalesced to one per
event-loop turn and every canvas draws its planes straight from the array while the mouse moves).  Each
update is timed from the mouse event until every canvas that must change (main, coronal, sagittal) has drawn
its new frame and the window has flushed it: what the user sees, not just our callback.  Also: CPU time per
update (less distorted by load than wall time), our Python time, the event-loop probe of ``bench_segment.py``
(a QTimer ticking every 10 ms: the longest gap between ticks), the release (napari's own exact slicing in
every view) and the canvas sizes.  Target (issue 13): a slice update while dragging ≤ 50 ms; the median,
95th percentile and maximum are printed.

The peer is napari alone in the same run and window: its own slider drag, the main viewer's ``dims.point``
moved through the same points (``dims.set_point``), one canvas re-sliced and drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

import numpy as np


def _volume():
    from napari_medimg.geometry import Volume

    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=(300, 512, 512), dtype=np.int16)
    return Volume(array, (1.0, 0.7, 0.7), (0.0, 0.0, 0.0), metadata={"modality": "CT", "units": "HU"})


class _Event:
    def __init__(self, position, kind):
        self.position, self.type = position, kind


def _drag(canvases, move, steps: int, gap_s: float, release=None) -> dict:
    """``steps`` drag moves, ``gap_s`` apart; each update is timed until every canvas in ``canvases`` has drawn.

    An update starts at the mouse event (``move``) and ends when the Qt event processing in which the last of
    the canvases drew its new frame returns: the window has then composed and flushed that frame, which is what
    the user sees.  ``python_ms`` is the part spent in ``move`` itself; ``release`` (optional) ends the drag,
    timed the same way (the exact frame).  A QTimer ticking every 10 ms is the
    event-loop probe of ``bench_segment.py``: the longest gap between its ticks is the longest time the
    viewer could not react to anything.
    """
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    drawn: set[str] = set()
    callbacks = []
    for name, canvas in canvases.items():

        def on_draw(event=None, name=name):
            drawn.add(name)

        canvas.events.draw.connect(on_draw)
        callbacks.append((canvas, on_draw))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    updates, python, cpu = [], [], []
    for step in range(steps):
        drawn.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        move(step)
        python.append(time.perf_counter() - start)
        while drawn != set(canvases) and time.perf_counter() - start < 5.0:
            app.processEvents()
        updates.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        end = time.perf_counter() + gap_s  # the next mouse event comes a little later; the timer may tick
        while time.perf_counter() < end:
            app.processEvents()
    release_ms = None
    if release is not None:
        drawn.clear()
        start = time.perf_counter()
        release()
        while drawn != set(canvases) and time.perf_counter() - start < 5.0:
            app.processEvents()
        release_ms = (time.perf_counter() - start) * 1000
    timer.stop()
    for canvas, on_draw in callbacks:
        canvas.events.draw.disconnect(on_draw)
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([0.0])
    updates, python, cpu = (np.asarray(a) * 1000 for a in (updates, python, cpu))
    return {
        "steps": steps,
        "canvases": {name: list(canvas.size[::-1]) for name, canvas in canvases.items()},  # width, height
        "median_update_ms": float(np.median(updates)),
        "p95_update_ms": float(np.percentile(updates, 95)),
        "max_update_ms": float(updates.max()),
        "median_update_cpu_ms": float(np.median(cpu)),
        "median_python_ms": float(np.median(python)),
        "max_event_loop_gap_ms": float(gaps.max() * 1000),
        "release_update_ms": release_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--gap-ms", type=float, default=12.0, help="idle time between two mouse moves")
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_medimg.plugin.layers import layer_data_tuple, set_or_add_layer
    from napari_medimg.plugin.views.orthogonal import OrthogonalViewsWidget

    volume = _volume()
    load_before = os.getloadavg()
    results = {}
    for mode in ("napari_alone", "with_orthogonal_views"):
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1600, 1000)
        set_or_add_layer(viewer, layer_data_tuple(volume, "image", name="CT", colormap="gray"))
        zs = np.linspace(30.0, 30.0 + 2.0 * args.steps, args.steps)  # the axial slice (S, mm)
        ys = np.linspace(60.0, 300.0, args.steps)
        xs = np.linspace(40.0, 320.0, args.steps)  # across the patient's L axis (mm)
        canvases = {"main": viewer.window._qt_viewer.canvas}
        release = None
        if mode == "napari_alone":
            # napari's own slider drag: the same crosshair points, one canvas re-sliced and drawn

            def move(step, viewer=viewer):
                viewer.dims.set_point([0, 1, 2], [zs[step], ys[step], xs[step]])  # noqa: B023

        else:
            widget = OrthogonalViewsWidget(viewer)
            viewer.window.add_dock_widget(widget, name="Orthogonal views", area="right")
            canvases.update({v.plane: v.qt_viewer.canvas for v in widget.views})
            view = widget.views[0]  # drag in the coronal view: moves the axial slice and the sagittal view
            event = _Event((150.0, 150.0, 150.0), "mouse_press")
            drag = view.model.mouse_drag_callbacks[-1](view.model, event)
            next(drag)
            event.type = "mouse_move"

            def move(step, event=event, drag=drag):
                event.position = (zs[step], ys[step], xs[step])  # noqa: B023
                next(drag)

            def release(event=event, drag=drag):
                event.type = "mouse_release"  # napari's own slicing in every view: the exact final frame
                with contextlib.suppress(StopIteration):
                    next(drag)

        app = QApplication.instance()
        for _ in range(25):
            app.processEvents()
            time.sleep(0.02)
        results[mode] = _drag(canvases, move, args.steps, args.gap_ms / 1000, release)
        viewer.close()
    results["ratio_median_update"] = results["with_orthogonal_views"]["median_update_ms"] / max(
        results["napari_alone"]["median_update_ms"], 1e-9
    )
    results["ratio_median_update_cpu"] = results["with_orthogonal_views"]["median_update_cpu_ms"] / max(
        results["napari_alone"]["median_update_cpu_ms"], 1e-9
    )
    results["load_before"] = [round(x, 2) for x in load_before]
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for mode in ("napari_alone", "with_orthogonal_views"):
            r = results[mode]
            print(
                f"{mode}: slice update median {r['median_update_ms']:.1f} ms, p95 {r['p95_update_ms']:.1f} ms, "
                f"max {r['max_update_ms']:.1f} ms (CPU {r['median_update_cpu_ms']:.1f} ms, our Python "
                f"{r['median_python_ms']:.1f} ms); longest event-loop gap {r['max_event_loop_gap_ms']:.0f} ms; "
                f"canvases (w, h) {r['canvases']}"
                + (
                    f"; release (exact frame) {r['release_update_ms']:.1f} ms"
                    if r["release_update_ms"]
                    else ""
                )
            )
        print(
            f"ratio (median, views / napari alone): {results['ratio_median_update']:.2f} wall, "
            f"{results['ratio_median_update_cpu']:.2f} CPU; load {results['load_before']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
