"""The API reference (docs/api, Sphinx autodoc + numpydoc) builds with warnings as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


@pytest.mark.slow
def test_api_reference_builds_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    processing = (tmp_path / "generated" / "processing.html").read_text(encoding="utf-8")
    # the functions are there with their numpydoc sections rendered
    assert "napari_medimg.processing.threshold.threshold_mask" in processing
    assert "Parameters" in processing and "radius_mm" in processing
    ops = (tmp_path / "generated" / "ops.html").read_text(encoding="utf-8")
    assert "napari_medimg.ops.run" in ops and "napari_medimg.ops.segment.islands" in ops
