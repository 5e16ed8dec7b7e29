"""Issue 12, items 7–10: the de-identification audit.

Every element of every output file is walked, nested sequences included, and no attribute that the PS3.15
Annex E basic profile removes, empties, replaces or remaps keeps one of its original values; UIDs are
remapped through one map per export (one replacement per original UID, references remapped, never
blanked); private attributes are gone.  Run on every shared DICOM series and on copies with identifying
data injected at every nesting level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.deid import DUMMY_VALUES, BurnedInAnnotationError, deidentify_dataset, profile_action
from napari_medimg.io.dicom import read_dicom, scan_dicom
from napari_medimg.io.dicom_write import deidentify_series, export_image_series, write_dicom_series

SERIES = [
    "ge_epi_fmri_classic_10vol",
    "philips_enhanced_b0_fieldmap",
    "philips_fieldmap_classic_2echo_magphase",
    "pydicom_samples",
    "siemens_ct_gantry_tilt",
    "siemens_mosaic_epi_5sl_2vol",
    "siemens_mosaic_fmri_hf_oblique",
    "siemens_mosaic_jpeg2000",
    "siemens_mosaic_jpeg_lossless",
    "siemens_mosaic_jpegls",
    "siemens_mosaic_rle",
    "siemens_xa30_t1w_sag_classic",
    "siemens_xa30_t1w_sag_enhanced",
    "siemens_xa60_enhanced_bold_3vol",
]
FAST = {"siemens_xa60_enhanced_bold_3vol", "siemens_ct_gantry_tilt", "philips_enhanced_b0_fieldmap"}
_DUMMIES = {str(v) for v in DUMMY_VALUES.values()} | {"", "0", "0.0", "b'\\x00\\x00'"}


def _walk(dataset: Dataset, path=()):
    """(path, element) for every element at every depth (sequence items included)."""
    for element in dataset:
        here = (*path, int(element.tag))
        yield here, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                yield from _walk(item, (*here, index))


def _text(element) -> list[str]:
    value = element.value
    if value is None or element.VR == "SQ":
        return []
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip("\0 ") for v in values if str(v).strip("\0 ")]


def _protected(originals) -> tuple[dict[int, set[str]], set[str]]:
    """Original values of the profile's attributes (tag → values) and every non-standard UID."""
    by_tag: dict[int, set[str]] = {}
    uids: set[str] = set()
    for dataset in originals:
        for _, element in _walk(dataset):
            if element.VR == "UI":
                uids |= {v for v in _text(element) if not v.startswith("1.2.840.10008.")}
            if profile_action(element.tag) in ("X", "Z", "D", "U") or element.tag.is_private:
                by_tag.setdefault(int(element.tag), set()).update(_text(element))
    return by_tag, uids


def audit(originals: list[Dataset], outputs: list[Dataset]) -> int:
    """Assert the audit on paired datasets; return the number of elements checked."""
    by_tag, uids = _protected(originals)
    checked = 0
    replacement: dict[str, str] = {}
    for original, output in zip(originals, outputs, strict=True):
        assert output.PatientIdentityRemoved == "YES"
        before = dict(_walk(original))
        for path, element in list(_walk(output)) + [((0x0002,), e) for e in output.file_meta]:
            checked += 1
            tag = int(element.tag)
            assert not element.tag.is_private, f"private {element.tag} kept at {path}"
            values = set(_text(element))
            kept = (values & by_tag.get(tag, set())) - _DUMMIES
            assert not kept, f"{element.keyword or element.tag} at {path} keeps {sorted(kept)[:3]}"
            if element.VR == "UI":
                assert not (values & uids), f"{element.keyword} at {path} keeps an original UID"
                old = before.get(path)
                if old is not None and old.VR == "UI":
                    for a, b in zip(_text(old), _text(element), strict=False):
                        if not a.startswith("1.2.840.10008."):
                            assert replacement.setdefault(a, b) == b, f"two replacements of {a}"
        for path, element in before.items():  # references are remapped, not blanked
            removed = any(profile_action(t) in ("X", "Z", "D") for t in path[:-1:2])  # e.g. X/Z/D sequences
            if element.keyword == "ReferencedSOPInstanceUID" and _text(element) and not removed:
                kept = dict(_walk(output)).get(path)
                assert kept is not None and _text(kept), f"reference at {path} was blanked"
    return checked


def _copy_and_audit(folder: Path, out: Path) -> int:
    scan = scan_dicom(folder)
    files = sorted({frame.path for series in scan.series for frame in series.frames})
    written = deidentify_series(folder, out)
    assert len(written) == len(files) > 0
    originals = [pydicom.dcmread(f) for f in files]
    outputs = [pydicom.dcmread(p) for p in written]
    return audit(originals, outputs)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(FAST))
def test_deidentified_copies_of_shared_series_keep_no_profile_value(shared_data, tmp_path, name):
    assert _copy_and_audit(shared_data / "dicom" / name, tmp_path / "out") > 50


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(set(SERIES) - FAST))
def test_deidentified_copies_of_every_shared_series_keep_no_profile_value(shared_data, tmp_path, name):
    assert _copy_and_audit(shared_data / "dicom" / name, tmp_path / "out") > 50


@pytest.mark.shared_data
def test_every_shared_folder_is_audited(shared_data):
    assert sorted(p.name for p in (shared_data / "dicom").iterdir() if p.is_dir()) == sorted(SERIES)


@pytest.mark.shared_data
def test_per_frame_dates_of_the_enhanced_files_are_replaced(shared_data):
    """Item 7 on the real enhanced files: FrameAcquisitionDateTime/FrameReferenceDateTime per frame."""
    folder = shared_data / "dicom" / "siemens_xa60_enhanced_bold_3vol"
    path = next(p for p in sorted(folder.rglob("*")) if p.is_file() and pydicom.misc.is_dicom(p))
    original = pydicom.dcmread(path)
    dates = {
        str(e.value)
        for _, e in _walk(original)
        if e.keyword in ("FrameAcquisitionDateTime", "FrameReferenceDateTime")
    }
    assert dates  # the real file has them per frame
    copy = deidentify_dataset(pydicom.dcmread(path), {})
    after = {
        str(e.value)
        for _, e in _walk(copy)
        if e.keyword in ("FrameAcquisitionDateTime", "FrameReferenceDateTime")
    }
    assert not (dates & after)


def _identity(ds: Dataset, level: str) -> None:
    ds.PatientName = f"Doe^Jane^{level}"
    ds.InstitutionName = f"St Elsewhere {level}"
    ds.StationName = f"CT{level}"
    ds.OperatorsName = f"Op^{level}"
    ds.DeviceSerialNumber = f"SN{level}"
    ds.StudyDate = "20240229"
    ds.ContentDate = "20240229"
    ds.AcquisitionDateTime = "20240229101010"
    ds.PatientID = f"MRN-{level}"
    block = ds.private_block(0x0029, "EVIL 1.0", create=True)
    block.add_new(0x01, "LO", f"private {level}")


@pytest.fixture
def injected(tmp_path) -> Path:
    """A 3-file series with identifying data at the top level, in kept sequences two levels deep, per frame,
    in private tags at every level, and references between the files."""
    volume = Volume(np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5), (2.0, 1.0, 1.0))
    source = tmp_path / "made"
    write_dicom_series(volume, source)
    files = sorted(source.glob("*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    folder = tmp_path / "injected"
    folder.mkdir()
    for index, ds in enumerate(datasets):
        _identity(ds, "top")
        equipment = Dataset()
        _identity(equipment, "equipment")
        equipment.ContributionDateTime = "20240229111111"
        inner = Dataset()
        _identity(inner, "deep")
        equipment.ContributingEquipmentSequence = Sequence([inner])  # a second nesting level
        ds.ContributingEquipmentSequence = Sequence([equipment])
        reference = Dataset()
        reference.ReferencedSOPClassUID = ds.SOPClassUID
        reference.ReferencedSOPInstanceUID = datasets[(index + 1) % len(datasets)].SOPInstanceUID
        ds.ReferencedImageSequence = Sequence([reference])
        source_ref = Dataset()
        source_ref.ReferencedSOPClassUID = ds.SOPClassUID
        source_ref.ReferencedSOPInstanceUID = datasets[0].SOPInstanceUID
        ds.SourceImageSequence = Sequence([source_ref])
        frame = Dataset()
        content = Dataset()
        content.FrameAcquisitionDateTime = "20240229121212"
        content.FrameReferenceDateTime = "20240229121213"
        frame.FrameContentSequence = Sequence([content])
        ds.PerFrameFunctionalGroupsSequence = Sequence([frame])
        ds.save_as(folder / f"{index}.dcm")
    return folder


def test_injected_identifying_data_is_removed_at_every_nesting_level(injected, tmp_path):
    files = sorted(injected.glob("*.dcm"))
    originals = [pydicom.dcmread(f) for f in files]
    written = deidentify_series(injected, tmp_path / "out")
    outputs = [pydicom.dcmread(p) for p in written]
    assert audit(originals, outputs) > 50
    texts = " ".join(str(e.value) for d in outputs for _, e in _walk(d) if e.VR != "SQ")
    for needle in ("Doe^Jane", "St Elsewhere", "MRN-", "SNtop", "SNdeep", "private", "20240229"):
        assert needle not in texts
    # references remapped consistently: each points at the new SOPInstanceUID of the file it pointed at
    new_uid = {o.SOPInstanceUID: n.SOPInstanceUID for o, n in zip(originals, outputs, strict=True)}
    for original, output in zip(originals, outputs, strict=True):
        old_ref = original.ReferencedImageSequence[0].ReferencedSOPInstanceUID
        assert output.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uid[old_ref]
        assert output.SourceImageSequence[0].ReferencedSOPInstanceUID == new_uid[originals[0].SOPInstanceUID]
        assert output.ReferencedImageSequence[0].ReferencedSOPClassUID == original.SOPClassUID
        assert "InstitutionName" not in output.ContributingEquipmentSequence[0]


def test_nifti_sidecar_of_a_deidentified_conversion_has_no_description(injected, tmp_path):
    out = tmp_path / "x.nii.gz"
    assert main(["convert", str(injected), str(out), "--deidentify"]) == 0
    sidecar = json.loads((tmp_path / "x.json").read_text())
    assert (
        "series_description" not in sidecar and "series_uid" not in sidecar and "source_path" not in sidecar
    )
    assert sidecar["modality"] == "CT"


def test_burned_in_annotation_is_refused_unless_allowed_and_kept_truthful(injected, tmp_path, capsys):
    for path in injected.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(path)
    with pytest.raises(BurnedInAnnotationError, match="BurnedInAnnotation"):
        deidentify_series(injected, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    assert main(["convert", str(injected), str(tmp_path / "cli"), "--deidentify"]) == 2
    assert "BurnedInAnnotation = YES" in capsys.readouterr().err
    written = deidentify_series(injected, tmp_path / "allowed", allow_burned_in=True)
    assert all(pydicom.dcmread(p).BurnedInAnnotation == "YES" for p in written)
    # the image export carries the source's flag (it was dropped before) and refuses it de-identified
    (volume,) = read_dicom(injected)
    with pytest.raises(BurnedInAnnotationError):
        export_image_series(volume, tmp_path / "export")
    result = export_image_series(volume, tmp_path / "export", allow_burned_in=True)
    assert result.from_source and all(pydicom.dcmread(p).BurnedInAnnotation == "YES" for p in result.files)
    plain = export_image_series(volume, tmp_path / "plain", deidentify=False)
    assert all(pydicom.dcmread(p).BurnedInAnnotation == "YES" for p in plain.files)


def test_deidentified_nifti_of_a_burned_in_series_is_refused_unless_allowed(injected, tmp_path, capsys):
    for path in injected.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(path)
    out = tmp_path / "x.nii.gz"
    assert main(["convert", str(injected), str(out), "--deidentify"]) == 2
    assert "BurnedInAnnotation = YES" in capsys.readouterr().err and not out.exists()
    assert main(["convert", str(injected), str(out), "--deidentify", "--allow-burned-in"]) == 0
    assert (
        main(["convert", str(injected), str(tmp_path / "plain.nii.gz")]) == 0
    )  # not de-identifying: allowed
