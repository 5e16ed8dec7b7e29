"""What every docs screenshot script shares: where the images go, letting Qt settle, saving small PNGs.

The scripts run under Xvfb from the repository root, e.g.
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/features.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PIL import Image
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
SHARED_DATA = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def settle(seconds: float = 1.0) -> None:
    """Run Qt's event loop for ``seconds`` so the canvas and docks finish drawing."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_until(condition, timeout: float = 600.0) -> None:
    """Run Qt's event loop until ``condition()`` is true (TimeoutError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout:.0f} s")
        QApplication.processEvents()
        time.sleep(0.02)


def wait_for_worker(widget, seconds_after: float = 0.5) -> None:
    """Wait until ``widget.worker`` is None (its job finished and its result is on screen)."""
    while widget.worker is not None:
        settle(0.1)
    settle(seconds_after)


def close_notifications() -> None:
    """Close napari's notification pop-ups (reader warnings …) so they do not cover the canvas.

    The messages stay readable in the home panel's Messages list and napari's notification list.
    """
    for widget in QApplication.allWidgets():
        if type(widget).__name__ == "NapariQtNotification" and widget.isVisible():
            widget.close()
    settle(0.3)


def save(viewer, name: str) -> Path:
    """Screenshot the whole window into docs/images/``name``, scaled to 3/4 and quantised (small PNGs)."""
    path = IMAGES / name
    viewer.screenshot(str(path), canvas_only=False)
    with Image.open(path) as picture:
        small = picture.convert("RGB").resize((picture.width * 3 // 4, picture.height * 3 // 4))
    small.quantize(128).save(path, optimize=True)
    print(path)
    return path
