"""The header parser's layout reuse: a file read at the offsets of the previous file's layout gives exactly what
walking it gives, and a file whose walk would differ is walked."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian

import napari_medimg.io._fastheader as fastheader
from napari_medimg.io._fastheader import parse_header


def _file(path, syntax=ExplicitVRLittleEndian, charset="ISO_IR 100", description="head", **values):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = values.pop("uid", "1.2.3.4.5.6")
    ds.SpecificCharacterSet = charset
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = "1.2.3.4", 3, "MR"
    ds.SeriesDescription = description
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.5, -1.5, 2.5], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.InstanceNumber = [0.8, 0.8], 1
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    if syntax == ExplicitVRLittleEndian or syntax.startswith("1.2.840.10008.1.2.2"):
        ds.PixelData = bytes(32)
    else:  # a compressed syntax: one encapsulated fragment (its bytes are not decoded here)
        ds.PixelData = encapsulate([b"\xff\xd8" + bytes(30)])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _walked(path):
    """What a walk of the file gives (no layout to reuse)."""
    fastheader._last_layout = None
    with open(path, "rb") as handle:
        header, offset = fastheader._parse(handle, path.stat().st_size, fastheader._Walk())
    return dict(header), header.file_meta, offset


def _read_after(first, path):
    """What ``path`` gives right after ``first`` was read (its layout kept), and whether the layout was used."""
    fastheader._last_layout = None
    with open(first, "rb") as handle:
        assert parse_header(handle, first.stat().st_size) is not None
    layout = fastheader._last_layout
    with open(path, "rb") as handle:
        used = layout is not None and fastheader._parse_like(handle, layout) is not None
        header, offset = parse_header(handle, path.stat().st_size)
    return (dict(header), header.file_meta, offset), used


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.70"])
def test_a_file_of_the_same_layout_reads_like_its_walk(tmp_path, syntax):
    first = _file(tmp_path / "a.dcm", syntax)
    # same element lengths, other values: a position, an instance number, a UID of the same length
    second = _file(
        tmp_path / "b.dcm",
        syntax,
        uid="1.2.3.4.5.7",
        ImagePositionPatient=[0.5, -1.5, 4.5],
        InstanceNumber=2,
        SeriesDescription="neck",
    )
    read, used = _read_after(first, second)
    assert used
    assert read == _walked(second)
    assert (
        read[0]["ImagePositionPatient"] == ["0.5", "-1.5", "4.5"] and read[0]["SeriesDescription"] == "neck"
    )


def test_the_same_bytes_under_another_character_set_are_decoded_again(tmp_path):
    # "ISO_IR 100" and "ISO_IR 192" have the same length, and these two descriptions the same bytes (C3 BC):
    # the layout matches, but the text must be decoded again under the second file's character set
    first = _file(tmp_path / "a.dcm", charset="ISO_IR 100", description="Kopf \u00c3\u00bc")
    second = _file(tmp_path / "b.dcm", charset="ISO_IR 192", description="Kopf \u00fc")
    read, used = _read_after(first, second)
    assert used and read == _walked(second)
    assert read[0]["SeriesDescription"] == "Kopf \u00fc"


def test_a_file_whose_walk_differs_is_walked(tmp_path):
    first = _file(tmp_path / "a.dcm")
    # a longer instance number and a shorter description: the same size, but the elements between them
    # moved, so the layout must not be used
    second = _file(tmp_path / "b.dcm", description="he", InstanceNumber=123)
    assert second.stat().st_size == first.stat().st_size
    read, used = _read_after(first, second)
    assert not used
    assert read == _walked(second) and read[0]["InstanceNumber"] == "123"
    # the same size but another transfer syntax of the same length: the syntax bytes are part of the layout
    implicit = _file(tmp_path / "c.dcm", "1.2.840.10008.1.2.1")
    big_endian = _file(tmp_path / "d.dcm", "1.2.840.10008.1.2.2")  # not read by this parser
    fastheader._last_layout = None
    with open(implicit, "rb") as handle:
        parse_header(handle, implicit.stat().st_size)
    with open(big_endian, "rb") as handle:
        assert parse_header(handle, big_endian.stat().st_size) is None
