"""The real dcm2niix binary for the differential DICOM tests (the test extras install it beside Python)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["DCM2NIIX", "needs_dcm2niix", "run_dcm2niix"]


def _find() -> str | None:
    beside = Path(sys.executable).parent / "dcm2niix"
    return shutil.which("dcm2niix") or (str(beside) if beside.is_file() else None)


DCM2NIIX = _find()
needs_dcm2niix = pytest.mark.skipif(DCM2NIIX is None, reason="the dcm2niix binary is not installed")


def run_dcm2niix(source: Path, out: Path, name: str = "%s_%p") -> tuple[list[Path], str, int]:
    """``dcm2niix -z n -b n -f NAME -o OUT SOURCE``: the ``.nii`` files it wrote, its output and exit status."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [DCM2NIIX, "-z", "n", "-b", "n", "-f", name, "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return sorted(out.glob("*.nii")), done.stdout + done.stderr, done.returncode
