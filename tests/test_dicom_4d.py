"""Stacks and volumes on synthetic series: splitting, labels, volume order, duplicates, 4D outputs and CLI options."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io import read_volume, select_volume
from napari_medimg.io.dicom import read_series, scan_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.export import diffusion_files, nifti_name

SHAPE = (4, 8, 10)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _edit(path: Path, **values) -> None:
    dataset = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


def _volume_series(
    root: Path, volumes: int, uid: str | None = None, **per_volume
) -> tuple[list[np.ndarray], str]:
    """``volumes`` copies of one geometry in one folder, one series; volume v has values offset by 100 v."""
    rng = np.random.default_rng(5)
    arrays, uid = [], uid or pydicom.uid.generate_uid()
    root.mkdir(parents=True, exist_ok=True)
    for v in range(volumes):
        array = (rng.integers(0, 50, SHAPE) + 100 * v).astype(np.int16)
        arrays.append(array)
        folder = root.parent / f".{root.name}_v{v}"
        write_dicom_series(Volume(array, (3.0, 1.0, 1.0), (0, 0, 0)), folder, series_description="fmri")
        for index, path in enumerate(_files(folder)):
            values = {key: value(v, index) for key, value in per_volume.items()}
            _edit(path, SeriesInstanceUID=uid, SeriesNumber=7, Modality="MR", **values)
            path.rename(root / f"v{v}_{path.name}")
    return arrays, uid


def test_images_sharing_positions_are_volumes_ordered_by_the_documented_rule(tmp_path):
    # instance numbers scrambled, acquisition times give the order: volume v starts at 10 v seconds
    arrays, _ = _volume_series(
        tmp_path / "s",
        5,
        InstanceNumber=lambda v, k: (4 - v) * 10 + k + 1,
        AcquisitionTime=lambda v, k: f"1200{10 * v + k:02d}.000",
    )
    (series,) = scan_dicom(tmp_path / "s").series
    assert series.array_shape == (5, *SHAPE) and series.warnings == []
    volume = read_series(series, lazy=False)
    assert volume.ndim == 4 and np.array_equal(volume.array, np.stack(arrays))
    times = [v["acquisition_time"] for v in volume.metadata["volume_info"]]
    assert times == [43200 + 10 * v for v in range(5)]
    assert "AcquisitionTime" in volume.metadata["volume_order"]
    lazy = read_series(series, lazy=True)
    assert lazy.array.chunks[:2] == ((1,) * 5, (1,) * SHAPE[0])
    assert np.array_equal(np.asarray(lazy.array[3, 2]), arrays[3][2])


def test_a_series_acquired_across_midnight_keeps_its_volume_order(tmp_path):
    """AcquisitionTime is a time of day: 23:59:58, 00:00:08, ... follow each other (before, the volumes after
    midnight were put first)."""
    start = 23 * 3600 + 59 * 60 + 48
    times = [(start + 10 * v) % 86400 for v in range(4)]
    arrays, _ = _volume_series(
        tmp_path / "s",
        4,
        InstanceNumber=lambda v, k: (3 - v) * 10 + k + 1,  # counter against time: only the times tell
        AcquisitionTime=lambda v, k: f"{times[v] // 3600:02d}{times[v] % 3600 // 60:02d}{times[v] % 60:02d}",
    )
    assert times[1] > times[2]  # the clock wrapped between volumes 1 and 2
    volume = read_volume(tmp_path / "s", lazy=False)
    assert np.array_equal(volume.array, np.stack(arrays))


def test_temporal_position_identifier_wins_over_acquisition_time(tmp_path):
    arrays, _ = _volume_series(
        tmp_path / "s",
        3,
        TemporalPositionIdentifier=lambda v, k: 3 - v,
        AcquisitionTime=lambda v, k: f"1200{v:02d}.000",
    )
    volume = read_volume(tmp_path / "s", lazy=False)
    assert np.array_equal(volume.array, np.stack(arrays[::-1]))


def test_echoes_and_phase_split_into_labelled_stacks(tmp_path):
    uid = pydicom.uid.generate_uid()
    kinds = {(1, "M"): 0, (2, "M"): 1, (1, "P"): 2, (2, "P"): 3}
    root = tmp_path / "s"
    arrays = {}
    for echo, kind in kinds:
        got, _ = _volume_series(
            root / f"{echo}{kind}",
            1,
            uid=uid,
            EchoNumbers=lambda v, k, e=echo: e,
            EchoTime=lambda v, k, e=echo: 2.3 * e,
            ImageType=lambda v, k, t=kind: ["ORIGINAL", "PRIMARY", "M_FFE" if t == "M" else "PHASE MAP", t],
        )
        arrays[(echo, kind)] = got[0]
    scan = scan_dicom(root)
    assert [s.label for s in scan.series] == ["e1", "e1_ph", "e2", "e2_ph"]
    assert all(s.array_shape == SHAPE and not s.warnings for s in scan.series)
    by_label = {s.label: read_series(s, lazy=False).array for s in scan.series}
    assert np.array_equal(by_label["e2_ph"], arrays[(2, "P")]) and np.array_equal(
        by_label["e1"], arrays[(1, "M")]
    )


def test_duplicates_only_when_pixels_are_identical_else_a_separate_stack(tmp_path):
    arrays, _ = _volume_series(tmp_path / "s", 1)
    files = _files(tmp_path / "s")
    copy = tmp_path / "s" / "copy.dcm"
    copy.write_bytes(files[1].read_bytes())
    _edit(copy, SOPInstanceUID=pydicom.uid.generate_uid(), InstanceNumber=50)  # same pixels: a duplicate
    other = tmp_path / "s" / "other.dcm"
    other.write_bytes(files[2].read_bytes())
    dataset = pydicom.dcmread(other)
    dataset.PixelData = (dataset.pixel_array + 1).astype(np.int16).tobytes()  # different pixels
    dataset.SOPInstanceUID, dataset.InstanceNumber = pydicom.uid.generate_uid(), 60
    dataset.save_as(other)
    scan = scan_dicom(tmp_path / "s")
    labels = sorted(s.label for s in scan.series)
    assert labels == ["", "extra"]
    main_stack = next(s for s in scan.series if not s.label)
    assert main_stack.array_shape == SHAPE
    assert any("duplicate" in w and "copy.dcm" in w for w in main_stack.warnings)
    extra = next(s for s in scan.series if s.label == "extra")
    assert [Path(f.path).name for f in extra.frames] == ["other.dcm"]  # nothing dropped: the file is named
    assert sum(len(s.frames) for s in scan.series) == len(files) + 1


def test_an_image_without_a_position_is_set_apart_and_the_others_keep_their_geometry(tmp_path, capsys):
    """One file without ImagePositionPatient used to send the whole series to the instance-order fallback
    (an assumed axial direction, 1 mm or the header's spacing apart)."""
    direction = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # sagittal slices
    array = np.random.default_rng(1).integers(1, 50, SHAPE).astype(np.int16)
    write_dicom_series(Volume(array, (3.0, 1.0, 1.0), (5.0, -2.0, 7.0), direction), tmp_path / "s")
    expected = read_series(scan_dicom(tmp_path / "s").series[0], lazy=False)
    lost = _files(tmp_path / "s")[2]
    dataset = pydicom.dcmread(lost)
    del dataset.ImagePositionPatient
    dataset.save_as(lost)
    scan = scan_dicom(tmp_path / "s")
    main_stack = next(s for s in scan.series if not s.label)
    volume = read_series(main_stack, lazy=False)
    np.testing.assert_allclose(volume.affine, expected.affine)  # the true geometry, with a blank slice
    blank = [k for k in range(SHAPE[0]) if (volume.array[k] < 0).all()]  # the fill: below every value
    kept = [k for k in range(SHAPE[0]) if k not in blank]
    assert len(blank) == 1 and np.array_equal(volume.array[kept], np.asarray(expected.array)[kept])
    assert any("no ImagePositionPatient" in w and lost.name in w for w in main_stack.warnings)
    (extra,) = [s for s in scan.series if s.label == "extra"]
    assert [Path(f.path).name for f in extra.frames] == [lost.name]  # nothing dropped: it is its own stack
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "out.nii.gz")]) == 0  # the main stack
    assert np.array_equal(
        np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj).transpose(2, 1, 0), volume.array
    )
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "x.nii.gz"), "--stack", "extra"]) == 0


def test_select_volume_and_4d_nifti_round_trip(tmp_path):
    arrays, _ = _volume_series(tmp_path / "s", 3, AcquisitionTime=lambda v, k: f"1200{v:02d}.000")
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "out.nii.gz")]) == 0
    image = nib.load(tmp_path / "out.nii.gz")
    assert image.shape == (SHAPE[2], SHAPE[1], SHAPE[0], 3)
    back = read_volume(tmp_path / "out.nii.gz")
    assert back.ndim == 4 and np.array_equal(back.array, np.stack(arrays))
    second = select_volume(back, 1)
    assert second.ndim == 3 and np.array_equal(second.array, arrays[1])
    with pytest.raises(ValueError, match="choose one with --volume"):
        select_volume(back, None)
    with pytest.raises(ValueError, match="has 3 volumes"):
        select_volume(back, 3)
    assert select_volume(second, None) is second


def test_segment_and_features_take_volume_n_of_a_4d_input(tmp_path, capsys):
    arrays, _ = _volume_series(tmp_path / "s", 3, AcquisitionTime=lambda v, k: f"1200{v:02d}.000")
    assert main(["segment", str(tmp_path / "s"), str(tmp_path / "mask.nii.gz"), "--threshold", "225:"]) == 2
    assert "--volume" in capsys.readouterr().err
    assert (
        main(
            [
                "segment",
                str(tmp_path / "s"),
                str(tmp_path / "mask.nii.gz"),
                "--threshold",
                "225:",
                "--volume",
                "2",
            ]
        )
        == 0
    )
    mask = read_volume(tmp_path / "mask.nii.gz").array
    assert np.array_equal(mask, (arrays[2] >= 225).astype(np.uint8))
    out = tmp_path / "t.csv"
    assert (
        main(
            [
                "features",
                str(tmp_path / "s"),
                str(tmp_path / "mask.nii.gz"),
                "--out",
                str(out),
                "--groups",
                "firstorder",
                "--volume",
                "2",
            ]
        )
        == 0
    )
    assert "firstorder_Mean" in out.read_text().splitlines()[0]


def test_diffusion_series_writes_bval_and_bvec_in_fsl_convention(tmp_path):
    directions = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    _volume_series(
        tmp_path / "s",
        4,
        AcquisitionTime=lambda v, k: f"1200{v:02d}.000",
        DiffusionBValue=lambda v, k: 0.0 if v == 0 else 1000.0,
        DiffusionGradientOrientation=lambda v, k: list(map(float, directions[v])),
    )
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "dwi.nii.gz")]) == 0
    assert (tmp_path / "dwi.bval").read_text().split() == ["0", "1000", "1000", "1000"]
    bvec = np.loadtxt(tmp_path / "dwi.bvec")
    assert bvec.shape == (3, 4) and np.allclose(bvec[:, 0], 0)
    # the axial synthetic grid: voxel i runs along L (RAS -x), j along P (RAS -y), k along S; det < 0 in RAS
    image = nib.load(tmp_path / "dwi.nii.gz")
    axes = image.affine[:3, :3] / np.linalg.norm(image.affine[:3, :3], axis=0)
    for v in range(1, 4):
        ras = np.array(directions[v], float) * [-1, -1, 1]
        expected = axes.T @ ras
        if np.linalg.det(axes) > 0:
            expected[0] = -expected[0]
        assert np.allclose(bvec[:, v], expected, atol=1e-6)
    sidecar = json.loads((tmp_path / "dwi.json").read_text())
    assert sidecar["volume_info"][1]["b_vector_lps"] == [1.0, 0.0, 0.0]
    assert diffusion_files(select_volume(read_volume(tmp_path / "dwi.nii.gz"), 0)) is None


def test_convert_all_writes_every_series_and_stack_with_dcm2niix_like_names(tmp_path, capsys):
    uid = pydicom.uid.generate_uid()
    for echo in (1, 2):
        _volume_series(
            tmp_path / "in" / f"e{echo}",
            2,
            uid=uid,
            EchoNumbers=lambda v, k, e=echo: e,
            AcquisitionTime=lambda v, k: f"1200{v:02d}.000",
        )
    write_dicom_series(
        Volume(np.zeros((3, 4, 4), np.int16)), tmp_path / "in" / "ct", series_description="CT head/neck"
    )
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--all"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".nii.gz"))
    assert names == ["7_fmri_e1.nii.gz", "7_fmri_e2.nii.gz", "9000_CT_head_neck.nii.gz"] or len(names) == 3
    assert any(n.startswith("7_fmri_e1") for n in names) and any("CT_head_neck" in n for n in names)
    assert nib.load(tmp_path / "out" / "7_fmri_e2.nii.gz").shape == (SHAPE[2], SHAPE[1], SHAPE[0], 2)
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--all"]) == 2  # no --overwrite
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "anon"), "--all", "--deidentify"]) == 0
    assert not any("fmri" in p.name for p in (tmp_path / "anon").iterdir())
    scan = scan_dicom(tmp_path / "in")
    assert {nifti_name(s) for s in scan.series} == {n.removesuffix(".nii.gz") for n in names}


def test_convert_all_cuts_an_over_long_series_description_in_the_file_name(tmp_path, capsys):
    """Some writers exceed the 64 characters of a long string; 300 made a name the file system refused and
    failed the whole --all run."""
    with warnings.catch_warnings():  # pydicom warns of the over-long value, as it should
        warnings.simplefilter("ignore", UserWarning)
        write_dicom_series(
            Volume(np.zeros((3, 4, 4), np.int16)), tmp_path / "in", series_description="ab" * 150
        )
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--all"]) == 0
    (written,) = [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".nii.gz")]
    assert written.endswith("_" + "ab" * 32 + ".nii.gz")


def test_deidentified_sidecar_keeps_no_acquisition_time_of_day(tmp_path):
    _volume_series(tmp_path / "s", 3, AcquisitionTime=lambda v, k: f"1312{10 * v:02d}.500")
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "anon.nii.gz"), "--deidentify"]) == 0
    sidecar = json.loads((tmp_path / "anon.json").read_text())
    assert [v["time_from_first_volume_s"] for v in sidecar["volume_info"]] == [0.0, 10.0, 20.0]
    text = json.dumps(sidecar)
    assert "acquisition_time" not in text and str(13 * 3600 + 12 * 60) not in text


def _ge_private_b(path: Path, b_value: int) -> None:
    dataset = pydicom.dcmread(path)
    block = dataset.private_block(0x0043, "GEMS_PARM_01", create=True)
    block.add_new(0x39, "IS", [b_value, 8, 0, 0])
    dataset.Manufacturer = "GE MEDICAL SYSTEMS"
    dataset.save_as(path)


def test_ge_dwi_two_slices_seven_volumes_keeps_every_volume_with_its_b_value(tmp_path, capsys):
    """The issue's GE DWI: 2 slices x 7 volumes used to open as 2 slices ("12 duplicate slices")."""
    global SHAPE
    shape, SHAPE = SHAPE, (2, 8, 10)
    try:
        arrays, _ = _volume_series(tmp_path / "s", 7, InstanceNumber=lambda v, k: 2 * v + k + 1)
    finally:
        SHAPE = shape
    for path in _files(tmp_path / "s"):
        volume = int(path.name[1])
        _ge_private_b(path, 0 if volume == 0 else 1_000_000_000 + 1000)  # GE flags b with 10^9
    (series,) = scan_dicom(tmp_path / "s").series
    assert series.array_shape == (7, 2, 8, 10) and series.warnings == []
    volume = read_series(series, lazy=False)
    assert np.array_equal(volume.array, np.stack(arrays))
    assert [v.get("b_value", 0) for v in volume.metadata["volume_info"]] == [0] + [1000.0] * 6
    assert main(["convert", str(tmp_path / "s"), str(tmp_path / "dwi.nii.gz")]) == 0
    assert (tmp_path / "dwi.bval").read_text().split() == ["0"] + ["1000"] * 6
    assert not (tmp_path / "dwi.bvec").exists() and "no .bvec" in capsys.readouterr().out


@pytest.mark.shared_data
def test_enhanced_volumes_indexed_by_a_private_dimension_stay_one_4d_stack(shared_data, tmp_path):
    """A vendor that indexes time with a private dimension (Philips does) must not get one stack per volume."""
    source = shared_data / "dicom" / "siemens_xa60_enhanced_bold_3vol" / "dicom"
    for path in sorted(source.iterdir()):
        dataset = pydicom.dcmread(path)
        for item in dataset.DimensionIndexSequence:
            if int(item.DimensionIndexPointer) == 0x00209128:  # TemporalPositionIndex -> a private tag
                item.DimensionIndexPointer = 0x20051234
        dataset.save_as(tmp_path / path.name)
    (series,) = scan_dicom(tmp_path).series
    assert series.array_shape == (3, 10, 64, 64) and series.label == ""
    reference = read_series(scan_dicom(source).series[0], lazy=False).array
    assert np.array_equal(read_series(series, lazy=False).array, reference)
