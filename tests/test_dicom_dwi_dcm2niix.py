"""Diffusion ``.bval``/``.bvec`` of ``medimg convert`` against the real dcm2niix, on synthetic DWI series.

Each case writes a small DWI series from scratch with pydicom (4 slices of 6 x 5 pixels, random values) in one
vendor's convention: the standard DiffusionBValue/DiffusionGradientOrientation, GE's and Philips' private
elements, Siemens' CSA header (classic and mosaic) and the enhanced MR Diffusion Sequence, at an axial, a
sagittal, a coronal and an oblique orientation.  Both converters run on it; the number of volumes, the
b-values, the b-vectors (mapped to world directions, since the two write different voxel orders) and the
voxels (world-mapped) must agree.  Tests that need dcm2niix skip only when the binary is absent.
"""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dcm2niix_runner import needs_dcm2niix
from dcm2niix_runner import run_dcm2niix as run_dcm2niix_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_medimg.cli import main
from napari_medimg.io.dicom.diffusion import ge_gradient_lps
from napari_medimg.io.dicom.mosaic import read_csa2

ROWS, COLS, SLICES = 6, 5, 4
SPACING = (2.0, 2.5, 3.0)  # row spacing (between rows), column spacing, slice spacing


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


_OBLIQUE = _rotation(2, 15) @ _rotation(0, 25)
#: ImageOrientationPatient (row direction, column direction) in LPS
ORIENTATIONS = {
    "axial": ((1, 0, 0), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1)),
    "coronal": ((1, 0, 0), (0, 0, -1)),
    "oblique": (tuple(_OBLIQUE[:, 0]), tuple(_OBLIQUE[:, 1])),
}
#: (b-value, unit direction) of the volumes: b=0 first and in the middle, four directions, two shells
DIRECTIONS = [
    (0.0, (0.0, 0.0, 0.0)),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 0.6, 0.8)),
    (0.0, (0.0, 0.0, 0.0)),
    (2000.0, (-0.48, 0.6, 0.64)),
    (1000.0, (0.267261, -0.534522, 0.801784)),
]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    return v / n if n else v


# --------------------------------------------------------------------------------------------------- CSA2 writer
def csa2(elements: dict) -> bytes:
    """A minimal Siemens CSA2 (``SV10``) header holding ``{name: (VR, [values])}``."""
    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(elements), 77))
    for name, (vr, values) in elements.items():
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 0, len(values), 77)
        for value in values:
            text = (f"{value:.8f}" if isinstance(value, float) else str(value)).encode() + b"\0"
            out += struct.pack("<4i", len(text), len(text), 77, len(text)) + text + b"\0" * (-len(text) % 4)
    return bytes(out)


def test_csa2_writer_reads_back():
    raw = csa2({"B_value": ("IS", [1000]), "DiffusionGradientDirection": ("FD", [0.0, 0.6, -0.8])})
    assert read_csa2(raw) == {"B_value": [1000], "DiffusionGradientDirection": [0.0, 0.6, -0.8]}


# ------------------------------------------------------------------------------------------------ series writers
def _geometry(orientation: str):
    row, col = (np.asarray(v, float) for v in ORIENTATIONS[orientation])
    normal = np.cross(row, col)
    origin = np.array([-7.0, 11.0, 23.0])
    positions = [origin + k * SPACING[2] * normal for k in range(SLICES)]
    return row, col, normal, positions


def _base(manufacturer: str, series_uid: str, study_uid: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.PatientName, ds.PatientID = "DWI^PHANTOM", "DWI0001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = study_uid[:-2] + ".9"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240101"
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.SeriesNumber, ds.AcquisitionNumber = 7, 1
    ds.SeriesDescription = "dwi"
    ds.MagneticFieldStrength = 3
    ds.EchoTime, ds.RepetitionTime = 80, 5000
    ds.SliceThickness = SPACING[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def write_classic(
    folder: Path, vendor: str, orientation: str, volumes, pixels, phase="COL", descending=False
) -> None:
    """One file per (volume, slice) in the ``vendor`` convention (standard, ge, philips, siemens).

    ``descending``: the instance numbers run against the slice normal (slice 0 is the last position).
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, col, normal, positions = _geometry(orientation)
    if descending:
        positions = positions[::-1]
    manufacturer = {
        "standard": "ACME",
        "ge": "GE MEDICAL SYSTEMS",
        "philips": "Philips Medical Systems",
        "siemens": "SIEMENS",
    }[vendor]
    series_uid, study_uid = generate_uid(), generate_uid()
    for v, (b_value, gradient) in enumerate(volumes):
        for k, position in enumerate(positions):
            ds = _base(manufacturer, series_uid, study_uid, "1.2.840.10008.5.1.4.1.1.4")
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            ds.InstanceNumber = v * SLICES + k + 1
            ds.AcquisitionTime = ds.ContentTime = f"1200{v:02d}.{k:03d}"
            ds.ImagePositionPatient = [round(float(x), 6) for x in position]
            ds.ImageOrientationPatient = [round(float(x), 8) for x in (*row, *col)]
            ds.PixelSpacing = [SPACING[0], SPACING[1]]
            ds.SpacingBetweenSlices = SPACING[2]
            ds.InPlanePhaseEncodingDirection = phase
            ds.Rows, ds.Columns = ROWS, COLS
            ds.PixelData = pixels[v, k].astype("<u2").tobytes()
            if vendor == "standard":
                ds.DiffusionBValue = b_value
                if b_value > 0:
                    ds.DiffusionGradientOrientation = list(gradient)
            elif vendor == "ge":
                ds.add_new(0x00430010, "LO", "GEMS_PARM_01")  # b_value: as stored, with GE's offsets
                ds.add_new(0x00431039, "IS", [int(b_value), 8, 0, 0])
                ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")  # gradient: in GE's logical frame
                for offset, value in zip((0xBB, 0xBC, 0xBD), gradient, strict=True):
                    ds.add_new(0x00191000 + offset, "DS", f"{value:.6f}")
            elif vendor == "philips":
                ds.add_new(0x20010010, "LO", "Philips Imaging DD 001")
                ds.add_new(0x20011003, "FL", float(b_value))
                ds.add_new(0x20011004, "CS", "I" if b_value > 0 and not np.any(gradient) else "O")
                ds.add_new(0x20050010, "LO", "Philips MR Imaging DD 001")
                for offset, value in zip((0xB0, 0xB1, 0xB2), gradient, strict=True):
                    ds.add_new(0x20051000 + offset, "FL", float(value))
            elif vendor == "siemens":
                ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
                elements = {"B_value": ("IS", [int(b_value)])}
                if b_value > 0:
                    elements["DiffusionGradientDirection"] = ("FD", [float(x) for x in gradient])
                elements["SliceNormalVector"] = ("FD", [float(x) for x in normal])
                ds.add_new(0x00291010, "OB", csa2(elements))
            ds.save_as(folder / f"{v:02d}_{k:02d}.dcm", enforce_file_format=True)


def write_mosaic(folder: Path, orientation: str, volumes, pixels) -> None:
    """Siemens mosaics: one file per volume, the slices as a 2 x 2 grid of tiles (CSA B_value/direction)."""
    folder.mkdir(parents=True, exist_ok=True)
    row, col, normal, positions = _geometry(orientation)
    grid = int(np.ceil(np.sqrt(SLICES)))
    series_uid, study_uid = generate_uid(), generate_uid()
    # IPP of a mosaic is the corner of the whole image: first tile less half the padding (see docs/dicom.md)
    corner = (
        positions[0]
        - row * SPACING[1] * (COLS * grid - COLS) / 2
        - col * SPACING[0] * (ROWS * grid - ROWS) / 2
    )
    for v, (b_value, gradient) in enumerate(volumes):
        ds = _base("SIEMENS", series_uid, study_uid, "1.2.840.10008.5.1.4.1.1.4")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"]
        ds.InstanceNumber = v + 1
        ds.AcquisitionNumber = v + 1
        ds.AcquisitionTime = ds.ContentTime = f"1200{v:02d}.000"
        ds.ImagePositionPatient = [round(float(x), 6) for x in corner]
        ds.ImageOrientationPatient = [round(float(x), 8) for x in (*row, *col)]
        ds.PixelSpacing = [SPACING[0], SPACING[1]]
        ds.SpacingBetweenSlices = SPACING[2]
        ds.InPlanePhaseEncodingDirection = "COL"
        ds.AcquisitionMatrix = [0, ROWS, COLS, 0]
        ds.Rows, ds.Columns = ROWS * grid, COLS * grid
        image = np.zeros((ROWS * grid, COLS * grid), np.uint16)
        for k in range(SLICES):
            r, c = divmod(k, grid)
            image[r * ROWS : (r + 1) * ROWS, c * COLS : (c + 1) * COLS] = pixels[v, k]
        ds.PixelData = image.astype("<u2").tobytes()
        ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
        ds.add_new(0x0019100A, "US", SLICES)
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        elements = {"NumberOfImagesInMosaic": ("US", [SLICES]), "B_value": ("IS", [int(b_value)])}
        if b_value > 0:
            elements["DiffusionGradientDirection"] = ("FD", [float(x) for x in gradient])
        elements["SliceNormalVector"] = ("FD", [float(x) for x in normal])
        ds.add_new(0x00291010, "OB", csa2(elements))
        ds.save_as(folder / f"{v:02d}.dcm", enforce_file_format=True)


#: DimensionIndexPointer -> FunctionalGroupPointer of the dimensions write_enhanced can declare
_DIMENSIONS = {"stack": (0x00209056, 0x00209111), "position": (0x00209057, 0x00209111)}
_DIMENSIONS |= {"b": (0x00189087, 0x00189117), "direction": (0x00189089, 0x00189076)}
_DIMENSIONS |= {"time": (0x00209128, 0x00209111)}


def write_enhanced(
    folder: Path,
    orientation: str,
    volumes,
    pixels,
    directionality=None,
    dimensions=("stack", "position", "time"),
) -> None:
    """One Enhanced MR file: a frame per (volume, slice), the MR Diffusion Sequence per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    row, col, normal, positions = _geometry(orientation)
    ds = _base("ACME", generate_uid(), generate_uid(), "1.2.840.10008.5.1.4.1.1.4.1")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = "20240101120000"
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.NumberOfFrames = len(volumes) * SLICES
    dimension = []
    for pointer, group in (_DIMENSIONS[name] for name in dimensions):
        item = Dataset()
        item.DimensionIndexPointer, item.FunctionalGroupPointer = pointer, group
        dimension.append(item)
    ds.DimensionIndexSequence = Sequence(dimension)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [SPACING[0], SPACING[1]], SPACING[2]
    measures.SpacingBetweenSlices = SPACING[2]
    plane = Dataset()
    plane.ImageOrientationPatient = [round(float(x), 8) for x in (*row, *col)]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([plane])
    timing = Dataset()
    timing.RepetitionTime, timing.FlipAngle = 5000, 90
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, data = [], []
    b_index = {b: i + 1 for i, b in enumerate(sorted({b for b, _ in volumes}))}
    for v, (b_value, gradient) in enumerate(volumes):
        kind = (directionality or {}).get(v, "DIRECTIONAL" if b_value > 0 else "NONE")
        for k, position in enumerate(positions):
            item = Dataset()
            content = Dataset()
            content.StackID, content.InStackPositionNumber = "1", k + 1
            content.TemporalPositionIndex = v + 1
            content.FrameAcquisitionDateTime = f"20240101120{v:01d}{k:02d}.000"
            index = {"stack": 1, "position": k + 1, "b": b_index[b_value], "direction": v + 1, "time": v + 1}
            content.DimensionIndexValues = [index[name] for name in dimensions]
            item.FrameContentSequence = Sequence([content])
            pos = Dataset()
            pos.ImagePositionPatient = [round(float(x), 6) for x in position]
            item.PlanePositionSequence = Sequence([pos])
            diffusion = Dataset()
            diffusion.DiffusionBValue = float(b_value)
            diffusion.DiffusionDirectionality = kind
            if kind == "DIRECTIONAL":
                direction = Dataset()
                direction.DiffusionGradientOrientation = [float(x) for x in gradient]
                diffusion.DiffusionGradientDirectionSequence = Sequence([direction])
            item.MRDiffusionSequence = Sequence([diffusion])
            frame_type = Dataset()
            frame_type.FrameType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            item.MRImageFrameTypeSequence = Sequence([frame_type])
            per_frame.append(item)
            data.append(pixels[v, k])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(data).astype("<u2").tobytes()
    ds.save_as(folder / "enhanced.dcm", enforce_file_format=True)


# ------------------------------------------------------------------------------------------------------ running
def run_dcm2niix(folder: Path, out: Path) -> list[Path]:
    written, log, status = run_dcm2niix_files(folder, out, "d_%s")
    assert status == 0, log
    return written


def _fsl_to_ras(bvec: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World (RAS) directions of FSL-convention b-vectors (3 x N) of a NIfTI with this affine."""
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    vectors = np.array(bvec, float).reshape(3, -1)
    if np.linalg.det(affine[:3, :3]) > 0:  # FSL: x is flipped for a positive determinant
        vectors[0] = -vectors[0]
    return axes @ vectors


def _read(nii: Path):
    image = nib.load(nii)
    bval, bvec = nii.with_suffix(".bval"), nii.with_suffix(".bvec")
    bvals = np.loadtxt(bval, ndmin=1) if bval.exists() else None
    bvecs = np.loadtxt(bvec, ndmin=2) if bvec.exists() else None
    return image, bvals, bvecs


def _world_voxels_equal(ours: nib.Nifti1Image, theirs: nib.Nifti1Image) -> None:
    """The two 4D images hold the same value at every world position (their grids map onto each other)."""
    mapping = np.linalg.inv(theirs.affine) @ ours.affine  # our voxel index -> theirs
    assert np.allclose(mapping[:3, :3], np.round(mapping[:3, :3]), atol=1e-3), mapping
    a, b = np.asarray(ours.dataobj), np.asarray(theirs.dataobj)
    assert a.shape[3:] == b.shape[3:] and sorted(a.shape[:3]) == sorted(b.shape[:3])
    ijk = np.indices(a.shape[:3]).reshape(3, -1)
    target = np.round(mapping[:3, :3] @ ijk + mapping[:3, 3:4]).astype(int)
    assert np.all(target >= 0) and np.all(target < np.array(b.shape[:3])[:, None]), "grids differ"
    assert np.array_equal(a[tuple(ijk)], b[tuple(target)])


def compare(folder: Path, tmp: Path, expected_volumes: int | None = None) -> dict:
    """Convert ``folder`` with both tools and assert they agree; returns what was compared."""
    theirs_files = [p for p in run_dcm2niix(folder, tmp / "dcm2niix") if p.with_suffix(".bval").exists()]
    assert len(theirs_files) == 1, sorted(p.name for p in (tmp / "dcm2niix").iterdir())
    ours_path = tmp / "ours" / "dwi.nii"
    ours_path.parent.mkdir()
    assert main(["convert", str(folder), str(ours_path)]) == 0
    ours, our_bvals, our_bvecs = _read(ours_path)
    theirs, bvals, bvecs = _read(theirs_files[0])
    assert our_bvals is not None and bvals is not None
    assert ours.shape[3] == theirs.shape[3] == len(bvals), (ours.shape, theirs.shape)
    if expected_volumes is not None:
        assert len(bvals) == expected_volumes
    assert np.array_equal(our_bvals, bvals), (our_bvals, bvals)
    assert our_bvecs is not None and bvecs is not None
    world_ours, world_theirs = _fsl_to_ras(our_bvecs, ours.affine), _fsl_to_ras(bvecs, theirs.affine)
    assert np.allclose(world_ours, world_theirs, atol=1e-4), (world_ours.T.round(4), world_theirs.T.round(4))
    _world_voxels_equal(ours, theirs)
    return {"bvals": bvals, "world": world_theirs}


def _pixels(volumes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 4000, (volumes, SLICES, ROWS, COLS)).astype(np.uint16)


def _case(tmp_path: Path, write) -> dict:
    write(tmp_path / "in")
    return compare(tmp_path / "in", tmp_path)


# ------------------------------------------------------------------------------------ against the real dcm2niix
@needs_dcm2niix
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize("vendor", ["standard", "philips", "siemens", "mosaic", "enhanced"])
def test_world_bvecs_match_dcm2niix(vendor, orientation, tmp_path):
    pixels = _pixels(len(DIRECTIONS))
    if vendor == "mosaic":
        result = _case(tmp_path, lambda d: write_mosaic(d, orientation, DIRECTIONS, pixels))
    elif vendor == "enhanced":
        result = _case(tmp_path, lambda d: write_enhanced(d, orientation, DIRECTIONS, pixels))
    else:
        result = _case(tmp_path, lambda d: write_classic(d, vendor, orientation, DIRECTIONS, pixels))
    assert result["bvals"].tolist() == [b for b, _ in DIRECTIONS]
    # the LPS gradients as written, as world (RAS) directions: dcm2niix and we agree, and both are right
    expected = np.array([_unit(g) * [-1, -1, 1] for _, g in DIRECTIONS]).T
    assert np.allclose(result["world"], expected, atol=1e-4)


@needs_dcm2niix
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize("phase", ["COL", "ROW"])
def test_ge_logical_frame_gradients_match_dcm2niix(phase, orientation, tmp_path):
    # GE stores (x, y, z) in its logical frame: the volumes take DIRECTIONS as the stored values
    _case(tmp_path, lambda d: write_classic(d, "ge", orientation, DIRECTIONS, _pixels(6), phase=phase))


@needs_dcm2niix
def test_ge_coronal_row_with_descending_slices_matches_dcm2niix(tmp_path):
    write = lambda d: write_classic(d, "ge", "coronal", DIRECTIONS, _pixels(6, 1), "ROW", descending=True)  # noqa: E731
    _case(tmp_path, write)


@needs_dcm2niix
@pytest.mark.parametrize(
    "volumes",
    [  # (0043,1039) first value with GE's 10^9 offset; gradients shorter than 1 (b scaled, rounded to 5)
        [(1000000000, (0, 0, 0)), (1000001000, (1, 0, 0)), (1000002000, (0, 0.6, 0.8)), (1000, (0, 0, 1))],
        [
            (0, (0, 0, 0)),
            (1000, (0.5, 0, 0)),
            (1000, (0, 0.55, 0)),
            (1000, (0, 0, 0.6)),
            (3000, (0.3, 0.4, 0)),
        ],
        [(0, (0, 0, 0)), (1000, (0.02, 0, 0)), (2001000000, (1, 0, 0)), (1000, (0, 1.0, 0))],
    ],
    ids=["offset", "short", "tiny-and-large"],
)
def test_ge_b_value_encodings_match_dcm2niix(volumes, tmp_path):
    _case(tmp_path, lambda d: write_classic(d, "ge", "oblique", volumes, _pixels(len(volumes), 2)))


@needs_dcm2niix
@pytest.mark.parametrize(
    "dimensions",
    [
        ("stack", "position", "time"),
        ("stack", "position", "b", "direction"),
        ("stack", "position", "direction", "b"),
        ("stack", "position", "direction"),
    ],
    ids="-".join,
)
def test_enhanced_volume_order_matches_dcm2niix(dimensions, tmp_path):
    # dcm2niix orders frames by DimensionIndexValues with the LAST dimension slowest: b-major for (direction, b)
    result = _case(
        tmp_path, lambda d: write_enhanced(d, "oblique", DIRECTIONS, _pixels(6), dimensions=dimensions)
    )
    acquired = [b for b, _ in DIRECTIONS]
    assert result["bvals"].tolist() == (sorted(acquired) if dimensions[-1] == "b" else acquired)


@needs_dcm2niix
@pytest.mark.parametrize("vendor", ["siemens", "mosaic"])
def test_siemens_trace_volume_is_kept_like_dcm2niix(vendor, tmp_path):
    volumes = [*DIRECTIONS, (1000.0, (0.0, 0.0, 0.0))]  # b > 0 without direction: the trace image
    pixels = _pixels(len(volumes), 3)
    if vendor == "mosaic":
        result = _case(tmp_path, lambda d: write_mosaic(d, "axial", volumes, pixels))
    else:
        result = _case(tmp_path, lambda d: write_classic(d, "siemens", "axial", volumes, pixels))
    assert len(result["bvals"]) == len(volumes) and result["bvals"][-1] == 1000
    assert not result["world"][:, -1].any()


@needs_dcm2niix
@pytest.mark.parametrize("vendor", ["philips", "standard", "enhanced"])
@pytest.mark.parametrize("where", ["last", "middle"])
def test_derived_trace_volume_is_left_out_as_dcm2niix_does(vendor, where, tmp_path, capsys):
    """A b > 0 image without a direction (Philips' trace, an ISOTROPIC enhanced frame; the standard tags of a
    maker dcm2niix does not know) is not a diffusion volume: dcm2niix leaves it out of the DWI and writes an
    _ADC file of every image with the trace ones last; ``medimg convert`` gives the same two (its stack 'adc').
    Before, the trace image was kept among the diffusion volumes."""
    trace = (1000.0, (0.0, 0.0, 0.0))
    volumes = [*DIRECTIONS, trace] if where == "last" else [*DIRECTIONS[:3], trace, *DIRECTIONS[3:]]
    pixels = _pixels(len(volumes), 4)
    at = volumes.index(trace)
    if vendor == "enhanced":
        write = lambda d: write_enhanced(d, "axial", volumes, pixels, directionality={at: "ISOTROPIC"})  # noqa: E731
    else:
        write = lambda d: write_classic(d, vendor, "axial", volumes, pixels)  # noqa: E731
    write(tmp_path / "in")
    (adc,) = [p for p in run_dcm2niix(tmp_path / "in", tmp_path / "probe") if p.name.endswith("_ADC.nii")]
    compare(tmp_path / "in", tmp_path, expected_volumes=len(DIRECTIONS))
    ours = tmp_path / "ours" / "adc.nii"
    assert main(["convert", str(tmp_path / "in"), str(ours), "--stack", "adc"]) == 0
    capsys.readouterr()
    assert nib.load(ours).shape[3] == len(volumes)
    _world_voxels_equal(nib.load(ours), nib.load(adc))


@needs_dcm2niix
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize("manufacturer", ["SIEMENS", "GE MEDICAL SYSTEMS", "Canon_MEC", "TOSHIBA", "HITACHI"])
def test_standard_diffusion_tags_of_each_maker_as_dcm2niix_reads_them(
    manufacturer, orientation, tmp_path, monkeypatch
):
    """The standard DiffusionBValue/DiffusionGradientOrientation under each maker's name: GE's and Canon's
    directions are in the logical frame of the acquisition (dcm2niix's GE rule; before, read as patient
    coordinates), the others' in patient coordinates; their derived trace image stays among the volumes."""
    volumes = [*DIRECTIONS, (1000.0, (0.0, 0.0, 0.0))]
    base = _base
    monkeypatch.setitem(globals(), "_base", lambda _, *rest: base(manufacturer, *rest))
    _case(tmp_path, lambda d: write_classic(d, "standard", orientation, volumes, _pixels(len(volumes), 4)))


@needs_dcm2niix
def test_non_unit_csa_directions_are_normalised_like_dcm2niix(tmp_path):
    volumes = [
        (0.0, (0, 0, 0)),
        (1000.0, (0.0, 1.2, 1.6)),
        (1000.0, (0.9, 0.0, 0.0)),
        (2000.0, (0.3, 0.3, 0.3)),
    ]
    pixels = _pixels(len(volumes), 5)
    for vendor in ("siemens",):  # (standard tags of an unknown vendor: dcm2niix assumes Philips, see docs)
        _case(tmp_path / vendor, lambda d, v=vendor: write_classic(d, v, "sagittal", volumes, pixels))


# ------------------------------------------------------------------------------------------ rules, without binary
def test_ge_short_gradient_b_value_rounds_to_five():
    from napari_medimg.io.dicom.diffusion import ge_scaled_b_value

    assert ge_scaled_b_value(1000.0, 0.55) == (305.0, pytest.approx(0.55 * np.sqrt(1000 / 305)))
    assert ge_scaled_b_value(1000.0, 0.5) == (250.0, pytest.approx(1.0))
    assert ge_scaled_b_value(1000.0, 0.05)[0] == 5.0  # 2.5 is raised to the minimum of 5
    assert ge_scaled_b_value(1000.0, 0.02) == (1000.0, 0.02)  # too short to be a scaling: kept as stored
    assert ge_scaled_b_value(1000.0, 1.001) == (1000.0, 1.001)
    assert ge_scaled_b_value(0.0, 0.5) == (0.0, 0.5)


def test_ge_row_phase_encoding_coronal_takes_opposite_in_plane_signs():
    coronal, axial = [1, 0, 0, 0, 0, -1], [1, 0, 0, 0, 1, 0]
    g = [0.6, 0.0, 0.8]
    row, col = np.array(coronal[:3], float), np.array(coronal[3:], float)
    normal = np.cross(row, col)
    # COL: -x r + y c + z n; ROW coronal: (x, y) -> (-y, x) first
    assert np.allclose(ge_gradient_lps(g, coronal, "COL")[0], -0.6 * row + 0.8 * normal)
    assert np.allclose(ge_gradient_lps(g, coronal, "ROW")[0], 0.6 * col + 0.8 * normal)
    # axial ROW keeps (x, y) -> (y, -x): -y r + x c
    assert np.allclose(ge_gradient_lps(g, axial, "ROW")[0], [0.0, 0.6, 0.8])


def test_standard_gradient_orientation_is_read_as_unit_vector(tmp_path):
    from napari_medimg.io.dicom.header import frames_of_file

    volumes = [(1000.0, (0.0, 3.0, 4.0))]
    write_classic(tmp_path, "standard", "axial", volumes, _pixels(1))
    for fast in (True, False):
        (frame, *_) = frames_of_file(sorted(tmp_path.iterdir())[0], fast=fast)[1]
        assert np.allclose(frame.b_vector, [0.0, 0.6, 0.8])


@needs_dcm2niix
@pytest.mark.parametrize("phase", ["COL", "ROW"])
def test_ge_private_zero_gradient_is_b0_as_dcm2niix_reads_it(phase, tmp_path):
    """A GE image with b > 0 and a zero gradient (a trace image) has b = 0 in dcm2niix's .bval."""
    volumes = [*DIRECTIONS, (1000.0, (0.0, 0.0, 0.0))]
    pixels = _pixels(len(volumes), 4)
    result = _case(tmp_path, lambda d: write_classic(d, "ge", "oblique", volumes, pixels, phase=phase))
    assert result["bvals"][-1] == 0
