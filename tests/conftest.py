"""Shared fixtures: the real scanner data folder, the phantom, and a napari viewer from napari's plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: ../shared/data beside the repository (CI has it); tests that read it carry the ``shared_data`` marker
SHARED_DATA = Path(
    os.environ.get("MEDIMG_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def pytest_collection_modifyitems(config, items):
    """Skip ``shared_data`` tests only when the shared data folder does not exist."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real scanner data folder {SHARED_DATA} does not exist on this machine")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (use with ``@pytest.mark.shared_data``)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom():
    """The default CT phantom (generated once per test session; treat it as read-only)."""
    from napari_medimg.samples import make_ct_phantom

    return make_ct_phantom()


@pytest.fixture(scope="session")
def small_phantom():
    """A smaller phantom (32 × 128 × 128 at 5 × 1.4 × 1.4 mm, same extent) for quick widget tests."""
    from napari_medimg.samples import make_ct_phantom

    return make_ct_phantom(shape=(32, 128, 128), spacing=(5.0, 1.4, 1.4))


_READ_IN_CHILD = (
    "import sys\n"
    "from napari_medimg.io.errors import MedImgReadError\n"
    "from napari_medimg.io.volumes import read_volume\n"
    "try:\n"
    "    print('read', read_volume(sys.argv[1]).array.shape)\n"
    "except MedImgReadError as error:\n"
    "    print('refused:', error)\n"
)


@pytest.fixture
def read_in_child():
    """``read_in_child(path)``: ``read_volume(path)`` in a new Python process (a decoder that kills its process
    fails the test, not the test run); returns the ``subprocess.CompletedProcess`` (stdout ``read SHAPE`` or
    ``refused: MESSAGE``)."""

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", _READ_IN_CHILD, str(path)], capture_output=True, text=True, timeout=120
        )

    return run
