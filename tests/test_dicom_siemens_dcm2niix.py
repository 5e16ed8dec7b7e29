"""Siemens-style series of ``medimg convert`` against the real dcm2niix binary (synthetic, from shared files).

Cases: multi-echo magnitude + phase mosaics, mosaics whose tile count is only in the CSA header or (no CSA
image header, or an old CSA1 one) only in the private MosaicRefAcqTimes, mosaic and classic Siemens DWI,
two-echo XA enhanced fMRI (one file per volume and echo), and mosaic series with a duplicated or missing
volume file.  The builders are those of the other differential files; the expectations are dcm2niix's files.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dcm2niix_runner import needs_dcm2niix, run_dcm2niix
from pydicom.uid import generate_uid
from test_dicom_dwi_dcm2niix import _pixels, _unit
from test_dicom_dwi_dcm2niix import compare as compare_dwi
from test_dicom_dwi_dcm2niix import write_classic as write_dwi_classic
from test_dicom_dwi_dcm2niix import write_mosaic as write_dwi_mosaic
from test_dicom_geometry_dcm2niix import (
    assert_same,
    compare,
    enhanced_frames,
    read_csa,
    rotation,
    template,
    write_csa,
    write_enhanced,
    write_mosaic,
)

from napari_medimg.cli import main

pytestmark = [pytest.mark.shared_data, needs_dcm2niix]
DWI = [
    (0, (0, 0, 0)),
    (1000, (0.3, -0.5, 0.81)),
    (0, (0, 0, 0)),
    (1000, (-0.9, 0.1, 0.42)),
    (2000, (0.1, 0.99, -0.05)),
]


def _mosaics(
    shared_data, folder: Path, n_volumes: int = 2, head_to_foot: bool = False, seed: int = 2
) -> Path:
    base = template(shared_data, "mosaic", keep_private=True)
    source, _ = write_mosaic(
        base, folder, np.random.default_rng(seed), 7, n_volumes, rotation(5, -3), head_to_foot=head_to_foot
    )
    return source


def _edit(folder: Path, change) -> None:
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)


def _drop(ds, group: int, creator: str, element: int) -> None:
    del ds[ds.private_block(group, creator).get_tag(element)]


def _set_times(ds, count: int) -> None:
    """The private MosaicRefAcqTimes (0019,xx29) with ``count`` values (the template holds 5)."""
    ds[ds.private_block(0x0019, "SIEMENS MR HEADER").get_tag(0x29)].value = [60.0 * k for k in range(count)]


def _csa1(ds) -> None:
    """The CSA image header rewritten in the old CSA1 layout (no ``SV10`` signature)."""
    element = ds[ds.private_block(0x0029, "SIEMENS CSA HEADER").get_tag(0x10)]
    tags = read_csa(element.value)
    out = bytearray(struct.pack("<II", len(tags), 77))
    for name, vm, vr, syngodt, last, items in tags:
        out += struct.pack("<64si4siii", name.encode(), vm, vr, syngodt, len(items), last)
        for item in items:
            out += struct.pack("<4i", len(item), len(item), 77, len(item)) + item + b"\0" * (-len(item) % 4)
    element.value = bytes(out)


# ------------------------------------------------------------------------------------------ 1. multi-echo
def test_multi_echo_magnitude_phase_mosaics_match_dcm2niix(shared_data, tmp_path):
    base = template(shared_data, "mosaic", keep_private=True)
    source, series, index = tmp_path / "src", generate_uid(), 0
    source.mkdir()
    rng = np.random.default_rng(1)
    for volume in range(2):
        for kind in ("M", "P"):
            for echo in (1, 2, 3):  # interleaved in file order
                folder, _ = write_mosaic(base, tmp_path / "w", rng, 7, 1, rotation(5, -3))
                ds = pydicom.dcmread(folder / "mosaic000")
                ds.SeriesInstanceUID, ds.EchoNumbers, ds.EchoTime = series, echo, 10.0 * echo
                ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "ND", "MOSAIC"]
                ds.InstanceNumber, ds.AcquisitionNumber = index + 1, volume + 1
                ds.AcquisitionTime = f"1200{volume * 2:02d}.000000"
                ds.save_as(source / f"f{index:03d}.dcm")
                shutil.rmtree(tmp_path / "w")
                index += 1
    result = compare(source, tmp_path)
    assert_same(result, 6)
    suffixes = sorted(name.split(".")[0].rsplit("AP_", 1)[1] for name in result["theirs"])
    assert suffixes == ["e1", "e1_ph", "e2", "e2_ph", "e3", "e3_ph"]
    assert sorted(name.split(".")[0].rsplit("AP_", 1)[1] for name in result["ours"]) == suffixes


# ------------------------------------------------------------------------------------- 2. tile count sources
def test_tile_count_only_in_the_csa_header_matches_dcm2niix(shared_data, tmp_path):
    source = _mosaics(shared_data, tmp_path / "src")
    _edit(source, lambda ds: _drop(ds, 0x0019, "SIEMENS MR HEADER", 0x0A))
    assert_same(compare(source, tmp_path), 1)


@pytest.mark.parametrize("private", [5, 9])
def test_the_csa_tile_count_wins_over_the_private_tag_like_dcm2niix(shared_data, tmp_path, private):
    """The CSA header says 7 tiles, (0019,100A) another number: dcm2niix cuts 7, and so do we."""
    source = _mosaics(shared_data, tmp_path / "src")

    def change(ds):
        ds[ds.private_block(0x0019, "SIEMENS MR HEADER").get_tag(0x0A)].value = private

    _edit(source, change)
    result = compare(source, tmp_path)
    assert_same(result, 1)


def _no_csa(ds, private_count: bool, times: int | None) -> None:
    _drop(ds, 0x0029, "SIEMENS CSA HEADER", 0x10)
    if not private_count:
        _drop(ds, 0x0019, "SIEMENS MR HEADER", 0x0A)
    if times is not None:
        _set_times(ds, times)


@pytest.mark.parametrize("private_count", [True, False])
@pytest.mark.parametrize("head_to_foot", [False, True])
def test_mosaic_without_csa_image_header_matches_dcm2niix(shared_data, tmp_path, private_count, head_to_foot):
    # no CSA: no SliceNormalVector either, so both take row x column (for H>>F tiles that is the wrong way)
    source = _mosaics(shared_data, tmp_path / "src", head_to_foot=head_to_foot)
    _edit(source, lambda ds: _no_csa(ds, private_count, 7))
    assert_same(compare(source, tmp_path), 1)


def test_csa1_image_header_is_read_as_absent_like_dcm2niix(shared_data, tmp_path):
    source = _mosaics(shared_data, tmp_path / "src", head_to_foot=True)
    _edit(source, lambda ds: (_csa1(ds), _set_times(ds, 7)))
    assert_same(compare(source, tmp_path), 1)


def test_conflicting_tile_counts_without_csa_are_refused(shared_data, tmp_path, capsys):
    """No CSA count, (0019,xx0A) says 7 and MosaicRefAcqTimes holds 5: dcm2niix cuts 5 tiles, we refuse."""
    source = _mosaics(shared_data, tmp_path / "src")
    _edit(source, lambda ds: _no_csa(ds, True, 5))
    theirs, log, _ = run_dcm2niix(source, tmp_path / "dcm2niix")
    import nibabel as nib

    assert [nib.load(p).shape for p in theirs] == [(8, 8, 5, 2)], log
    capsys.readouterr()
    assert main(["convert", str(source), str(tmp_path / "ours"), "--all"]) != 0
    error = capsys.readouterr().err
    assert "NumberOfImagesInMosaic (7) and MosaicRefAcqTimes (5 values) disagree" in error
    assert not list((tmp_path / "ours").glob("*.nii*"))


def test_mosaic_without_any_tile_count_is_refused(shared_data, tmp_path, capsys):
    source = _mosaics(shared_data, tmp_path / "src")

    def strip(ds):
        _no_csa(ds, False, None)
        _drop(ds, 0x0019, "SIEMENS MR HEADER", 0x29)

    _edit(source, strip)
    capsys.readouterr()
    assert main(["convert", str(source), str(tmp_path / "ours"), "--all"]) != 0
    assert "without NumberOfImagesInMosaic or MosaicRefAcqTimes" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- 3. DWI
def _b_matrix(folder: Path, drop_direction: bool = False) -> None:
    for path, (b, g) in zip(sorted(folder.iterdir()), DWI, strict=True):
        ds = pydicom.dcmread(path)
        element = ds[ds.private_block(0x0029, "SIEMENS CSA HEADER").get_tag(0x10)]
        tags = read_csa(element.value)
        if b > 0:
            m = b * np.outer(_unit(g), _unit(g))
            values = [m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]]
            tags.append(["B_matrix", 6, b"FD", 0, 77, [f"{v:.8f}".encode() + b"\0" for v in values]])
        if drop_direction:
            tags = [t for t in tags if t[0] != "DiffusionGradientDirection"]
        element.value = write_csa(tags)
        ds.save_as(path)


def test_mosaic_dwi_with_b_matrix_and_b0_matches_dcm2niix(tmp_path):
    write_dwi_mosaic(tmp_path / "in", "oblique", DWI, _pixels(len(DWI)))
    _b_matrix(tmp_path / "in")
    result = compare_dwi(tmp_path / "in", tmp_path, len(DWI))
    assert result["bvals"].tolist() == [b for b, _ in DWI]
    expected = np.array([_unit(g) * [-1, -1, 1] for _, g in DWI]).T
    assert np.allclose(result["world"], expected, atol=1e-4)


def test_b_matrix_without_direction_gives_no_bvec_where_dcm2niix_writes_zeros(tmp_path):
    write_dwi_mosaic(tmp_path / "in", "oblique", DWI, _pixels(len(DWI)))
    _b_matrix(tmp_path / "in", drop_direction=True)
    theirs, log, status = run_dcm2niix(tmp_path / "in", tmp_path / "dcm2niix", "d_%s")
    assert status == 0 and len(theirs) == 1, log
    assert not np.loadtxt(theirs[0].with_suffix(".bvec")).any()  # dcm2niix does not read B_matrix
    ours = tmp_path / "ours" / "dwi.nii"
    ours.parent.mkdir()
    assert main(["convert", str(tmp_path / "in"), str(ours)]) == 0
    assert np.array_equal(np.loadtxt(ours.with_suffix(".bval")), np.loadtxt(theirs[0].with_suffix(".bval")))
    assert not ours.with_suffix(".bvec").exists()


def test_classic_siemens_dwi_with_standard_tags_matches_dcm2niix(tmp_path):
    write_dwi_classic(tmp_path / "in", "standard", "oblique", DWI, _pixels(len(DWI), 1))
    _edit(tmp_path / "in", lambda ds: setattr(ds, "Manufacturer", "SIEMENS"))
    result = compare_dwi(tmp_path / "in", tmp_path, len(DWI))
    expected = np.array([_unit(g) * [-1, -1, 1] for _, g in DWI]).T
    assert np.allclose(result["world"], expected, atol=1e-4)


# ------------------------------------------------------------------------------------------ 4. XA enhanced
def test_xa_enhanced_two_echo_fmri_matches_dcm2niix(shared_data, tmp_path):
    base, rng = template(shared_data, "enhanced"), np.random.default_rng(3)
    source, series, frame_of_reference, index = tmp_path / "src", generate_uid(), generate_uid(), 0
    source.mkdir()
    iop = rotation(7, -4, base="coronal")
    for volume in range(3):
        for echo in (1, 2):
            frames = enhanced_frames(rng, [(iop, (-5, 3, -20), 6, 2.0)], 3)
            write_enhanced(base, tmp_path / "w" / "f", [f for f in frames if f.temporal == volume + 1])
            ds = pydicom.dcmread(tmp_path / "w" / "f")
            ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series, frame_of_reference
            ds.InstanceNumber = index + 1
            for item in ds.PerFrameFunctionalGroupsSequence:
                item.MREchoSequence[0].EchoNumbers = echo
                item.MREchoSequence[0].EffectiveEchoTime = 15.0 * echo
            ds.save_as(source / f"{index:03d}")
            index += 1
    result = compare(source, tmp_path)
    assert_same(result, 2)
    assert sorted(n.split(".")[0][-2:] for n in result["ours"]) == ["e1", "e2"]


# ------------------------------------------------------------------------------- 5. duplicated / missing file
def test_duplicated_mosaic_file_is_dropped_like_dcm2niix(shared_data, tmp_path):
    source = _mosaics(shared_data, tmp_path / "src", n_volumes=4)
    shutil.copy(source / "mosaic001", source / "zcopy")  # same SOPInstanceUID
    result = compare(source, tmp_path)
    assert_same(result, 1)
    assert "DUPLICATES REMOVED" in result["log"]


def test_missing_mosaic_volume_gives_one_volume_less_like_dcm2niix(shared_data, tmp_path):
    source = _mosaics(shared_data, tmp_path / "src", n_volumes=4)
    (source / "mosaic002").unlink()
    assert_same(compare(source, tmp_path), 1)
    import nibabel as nib

    (ours,) = (tmp_path / "ours").glob("*.nii.gz")
    assert nib.load(ours).shape == (8, 8, 7, 3)
