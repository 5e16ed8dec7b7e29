"""``medimg convert`` to ``.nii`` streams the pixels from the DICOM files into the output file: the result must
be byte-identical to reading the stack whole and writing it (image and sidecar), and all-or-nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_series, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.errors import CorruptFileError
from napari_medimg.io.export import bids_sidecar, diffusion_files, write_series_nifti
from napari_medimg.io.nifti import sidecar_path, write_nifti


def _eager(series, path: Path, philips_float: bool = False) -> Volume:
    """What ``medimg convert`` wrote before it streamed: the whole stack read, then written."""
    volume = read_series(series, lazy=False, philips_float=philips_float)
    volume.metadata.update(bids_sidecar(volume))
    sidecar = {k: v for k, v in volume.metadata.items() if k != "lazy"}
    write_nifti(volume, path, sidecar=sidecar)
    return volume


def _same_outputs(streamed: Path, eager: Path) -> None:
    assert streamed.read_bytes() == eager.read_bytes()
    assert json.loads(sidecar_path(streamed).read_text()) == json.loads(sidecar_path(eager).read_text())


@pytest.mark.shared_data
def test_every_stack_of_every_shared_series_streams_to_the_bytes_of_the_whole_read(shared_data, tmp_path):
    checked = set()
    for folder in sorted(p for p in (shared_data / "dicom").iterdir() if p.is_dir()):
        for number, series in enumerate(scan_dicom(folder).series):
            streamed, eager = (
                tmp_path / f"{folder.name}_{number}.nii",
                tmp_path / f"{folder.name}_{number}e.nii",
            )
            volume = write_series_nifti(series, streamed)
            expected = _eager(series, eager)
            _same_outputs(streamed, eager)
            assert np.array_equal(volume.array, expected.array)
            checked.add((series.n_volumes > 1, any(f.region is not None for f in series.frames)))
            if series.header.manufacturer.upper().startswith("PHILIPS"):  # dcm2niix's float scaling too
                scaled = tmp_path / f"{folder.name}_{number}_float.nii"
                write_series_nifti(series, scaled, philips_float=True)
                _eager(series, tmp_path / f"{folder.name}_{number}_float_e.nii", philips_float=True)
                _same_outputs(scaled, tmp_path / f"{folder.name}_{number}_float_e.nii")
    assert checked >= {(False, False), (True, False), (True, True)}  # 3D, 4D and 4D mosaic stacks among them


@pytest.mark.shared_data
def test_a_streamed_diffusion_series_writes_its_b_files_with_the_image(shared_data, tmp_path):
    folder = shared_data / "dicom" / "siemens_mosaic_epi_5sl_2vol" / "dicom"
    (series,) = scan_dicom(folder).series
    for frame in series.frames:  # give the second volume a diffusion weighting
        frame.b_value, frame.b_vector = (0.0, None) if frame is series.volume_slots[0][0] else (1000.0, None)
    volume = write_series_nifti(series, tmp_path / "dwi.nii")
    assert (tmp_path / "dwi.bval").read_text() == diffusion_files(volume)[0]
    assert not (tmp_path / "dwi.bvec").exists()  # no gradient directions in the files: no .bvec


def _series(folder: Path, shape=(12, 20, 16)) -> np.ndarray:
    array = np.random.default_rng(4).integers(-1000, 2000, size=shape).astype(np.int16)
    write_dicom_series(Volume(array, (2.0, 0.7, 0.8), (-5.0, 3.0, 40.0)), folder, series_description="s")
    return array


def test_blank_slices_of_a_gap_are_streamed_with_the_fill_value(tmp_path):
    _series(tmp_path / "s")
    files = sorted((tmp_path / "s").glob("*.dcm"))
    files[3].unlink()
    files[7].unlink()
    (series,) = scan_dicom(tmp_path / "s").series
    assert sum(slot is None for slot in series.slots) == 2
    volume = write_series_nifti(series, tmp_path / "out.nii")
    _eager(series, tmp_path / "eager.nii")
    _same_outputs(tmp_path / "out.nii", tmp_path / "eager.nii")
    assert np.all(volume.array[[3, 7]] == series.fill_value)


def test_a_file_damaged_after_the_scan_leaves_the_old_output_untouched(tmp_path):
    _series(tmp_path / "s")
    out = tmp_path / "out.nii"
    assert main(["convert", str(tmp_path / "s"), str(out)]) == 0
    before = out.read_bytes(), sidecar_path(out).read_text()
    (series,) = scan_dicom(tmp_path / "s").series
    damaged = Path(series.slots[6].path)  # cut inside its pixels after the header pass has seen it whole
    damaged.write_bytes(damaged.read_bytes()[: -len(pydicom.dcmread(damaged).PixelData) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        write_series_nifti(series, out, overwrite=True)
    assert (out.read_bytes(), sidecar_path(out).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.nii", "s"]  # no temporary left
