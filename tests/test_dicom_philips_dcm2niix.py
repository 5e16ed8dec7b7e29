"""Philips-style series: ``medimg convert`` against the real dcm2niix binary.

Made with pydicom from the shared Philips files (classic: ``philips_fieldmap_classic_2echo_magphase``,
enhanced: ``philips_enhanced_b0_fieldmap``) with the private elements that matter kept: the ScaleSlope
(2005,100E), the Phase Number (2001,1008), the per-frame private group (2005,140F) and its private dimension
indices.  Values are compared as dcm2niix writes them (Philips floating-point scaling) against
``medimg convert --philips-float``; with no ScaleSlope both give the displayed values.  Every dcm2niix output
must have one of ours with the same shape (volume axis included), the same voxels in world space and every
grid corner within 0.05 mm.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dcm2niix_runner import needs_dcm2niix
from dcm2niix_runner import run_dcm2niix as run_dcm2niix_files
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from test_dicom_dwi_dcm2niix import _fsl_to_ras
from test_dicom_geometry_dcm2niix import (
    canonical,
    corners,
    rotation,
    same_image,
    template,
    volumes_of,
    write_classic,
)

from napari_medimg.cli import main

pytestmark = pytest.mark.shared_data
TOLERANCE_MM = 0.05
PHASE_NUMBER = 0x20011008  # Philips Imaging DD 001 "Phase Number" (the shared template has it, = 1)
SCALE_SLOPE = 0x2005100E  # Philips MR Imaging DD 001 ScaleSlope


# ------------------------------------------------------------------------------------------ running both
def dcm2niix(source: Path, out: Path) -> tuple[list[Path], str]:
    written, log, status = run_dcm2niix_files(source, out, "d_%s")
    assert status == 0, log
    return written, log


def ours(source: Path, out: Path, *options: str) -> list[Path]:
    assert main(["convert", str(source), str(out), "--all", "--philips-float", *options]) == 0
    return sorted(out.glob("*.nii.gz"))


def match(theirs: list[Path], mine: list[Path], atol: float = 1e-3) -> dict[str, str]:
    """For each dcm2niix output the name of our output that equals it (shape, corners, voxels)."""
    loaded = {p.name: canonical(p) for p in mine}
    found, why = {}, {}
    for path in theirs:
        reference = canonical(path)
        reasons = {}
        for name, candidate in loaded.items():
            if name in found.values():
                continue
            reason = same_image(candidate, reference, atol)
            if reason is None:
                found[path.name] = name
                break
            reasons[name] = reason
        else:
            why[path.name] = reasons
    assert not why, why
    return found


# ------------------------------------------------------------------------------------- case 1: classic 4D
def classic_4d(
    shared_data: Path,
    folder: Path,
    attrs,
    phase_number="keep",
    scale_slope: bool = True,
    n_volumes: int = 3,
    n_slices: int = 4,
    seed: int = 1,
) -> tuple[Path, list]:
    """Philips classic fMRI-like series: one file per (volume, slice), InstanceNumber time-major.

    ``attrs(v, s)``: attributes per image (``None`` removes one); ``phase_number``: ``"keep"`` (the template's
    (2001,1008) = 1), ``None`` (removed) or a function ``(v, s) -> int``."""
    base = template(shared_data, "philips", keep_private=True)
    if not scale_slope:
        del base[SCALE_SLOPE]
    if phase_number is None:
        del base[PHASE_NUMBER]
    rng = np.random.default_rng(seed)
    images = volumes_of(rng, n_volumes, n_slices, rotation(4, -3), lambda v, s: v * n_slices + s + 1, attrs)
    source = write_classic(base, folder, images, rng)
    if callable(phase_number):
        for path in source.iterdir():
            ds = pydicom.dcmread(path)
            v, s = divmod(int(ds.InstanceNumber) - 1, n_slices)
            ds[PHASE_NUMBER].value = str(phase_number(v, s))
            ds.save_as(path)
    return source, images


# ------------------------------------------------------------------------------- enhanced (one multi-frame file)
_ENHANCED: dict[str, pydicom.Dataset] = {}
_PRIVATE = "Philips MR Imaging DD 001"


def enhanced_template(shared_data: Path) -> pydicom.Dataset:
    if "b0" not in _ENHANCED:
        path = shared_data / "dicom" / "philips_enhanced_b0_fieldmap" / "dicom" / "IM_0027_fMAP.dcm"
        _ENHANCED["b0"] = pydicom.dcmread(path)
    return copy.deepcopy(_ENHANCED["b0"])


def _private_dimension(base: pydicom.Dataset, element: int, label: str) -> pydicom.Dataset:
    """A DimensionIndexSequence item pointing at a private element of the frames' (2005,140F) item, made like
    the template's own private dimensions (Dimension Index / Functional Group Private Creator)."""
    item = copy.deepcopy(base.DimensionIndexSequence[2])
    item.DimensionIndexPointer = 0x20050000 | element
    item.DimensionDescriptionLabel = label
    return item


def write_enhanced(
    shared_data: Path,
    path: Path,
    frames: list[dict],
    rows: int = 6,
    cols: int = 5,
    iop=(1, 0, 0, 0, 1, 0),
    spacing=(2.0, 2.5, 3.0),
    private_dimensions=(),
    image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"),
    echo_dimension: bool = False,
    slice_number=lambda k: k + 1,
    **options,
) -> Path:
    """One Philips enhanced file; ``frames`` in file order, each ``{"slice", "pixels", "index": [..]}`` plus
    optional ``b`` / ``direction`` / ``directionality`` / ``slope`` / ``intercept`` / ``scale`` /
    ``frame_type`` / ``echo`` / ``te``.  The dimensions are StackID, InStackPositionNumber and the private
    ones ``[(element, label)]``; ``index`` gives their values."""
    ds = enhanced_template(shared_data)
    template_frame = ds.PerFrameFunctionalGroupsSequence[0]
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.ImageType = list(image_type)
    if "ReferencedImageSequence" in ds.SharedFunctionalGroupsSequence[0]:
        del ds.SharedFunctionalGroupsSequence[0].ReferencedImageSequence
    dims = [copy.deepcopy(ds.DimensionIndexSequence[0]), copy.deepcopy(ds.DimensionIndexSequence[1])]
    dims += [_private_dimension(ds, element, label) for element, label in private_dimensions]
    if echo_dimension:  # EffectiveEchoTime of the MR Echo Sequence, after the private dimensions
        echo = copy.deepcopy(ds.DimensionIndexSequence[0])
        echo.DimensionIndexPointer, echo.FunctionalGroupPointer = 0x00189082, 0x00189114
        echo.DimensionDescriptionLabel = "Effective Echo Time"
        dims.append(echo)
    ds.DimensionIndexSequence = Sequence(dims)
    ds[0x2001, 0x1018].value = len({f["slice"] for f in frames})  # Number of Slices MR
    if "number_of_echoes" in options:
        ds[0x2001, 0x1014].value = options["number_of_echoes"]
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    origin = np.array([-7.0, 11.0, 23.0])
    items = []
    for frame in frames:
        item = copy.deepcopy(template_frame)
        k = frame["slice"]
        ipp = origin + k * spacing[2] * normal
        item.PlanePositionSequence[0].ImagePositionPatient = [round(float(v), 6) for v in ipp]
        item.PlaneOrientationSequence[0].ImageOrientationPatient = [round(float(v), 8) for v in iop]
        measures = item.PixelMeasuresSequence[0]
        measures.PixelSpacing = [spacing[0], spacing[1]]
        measures.SliceThickness = measures.SpacingBetweenSlices = spacing[2]
        content = item.FrameContentSequence[0]
        content.StackID, content.InStackPositionNumber = "1", k + 1
        content.TemporalPositionIndex = 1
        content.DimensionIndexValues = [
            1,
            k + 1,
            *frame["index"],
            *([frame["echo"]] if echo_dimension else []),
        ]
        transform = item.PixelValueTransformationSequence[0]
        transform.RescaleSlope = frame.get("slope", 1.0)
        transform.RescaleIntercept = frame.get("intercept", 0.0)
        item.MRImageFrameTypeSequence[0].FrameType = list(frame.get("frame_type", image_type))
        item.MREchoSequence[0].EffectiveEchoTime = frame.get("te", 1.52)
        private = item[0x2005, 0x140F].value[0]
        private.ImagePositionPatient = item.PlanePositionSequence[0].ImagePositionPatient
        private.PixelSpacing = measures.PixelSpacing
        private.SliceThickness = private.SpacingBetweenSlices = spacing[2]
        private.ImageType = list(frame.get("private_type", frame.get("frame_type", image_type)))
        item.MRImageFrameTypeSequence[0].ComplexImageComponent = frame.get("component", "MAGNITUDE")
        private.EchoNumbers = frame.get("echo", 1)
        private.EchoTime = frame.get("te", 1.52)
        private.RescaleSlope, private.RescaleIntercept = transform.RescaleSlope, transform.RescaleIntercept
        imaging = private.private_block(0x2001, "Philips Imaging DD 001", create=True)
        imaging.add_new(0x0A, "IS", str(slice_number(k)))  # Slice Number MR (dcm2niix reads it)
        block = private.private_block(0x2005, _PRIVATE, create=True)
        block.add_new(0x0E, "FL", float(frame.get("scale", 1.0)))
        for (element, _), value in zip(private_dimensions, frame["index"], strict=True):
            block.add_new(element, "IS", str(value))
        if "b" in frame:
            b, direction = frame["b"], np.asarray(frame.get("direction", (0, 0, 0)), float)
            kind = frame.get("directionality", "DIRECTIONAL" if b > 0 and direction.any() else "NONE")
            diffusion = pydicom.Dataset()
            diffusion.DiffusionBValue = float(b)
            diffusion.DiffusionDirectionality = kind
            if kind == "DIRECTIONAL":
                gradient = pydicom.Dataset()
                gradient.DiffusionGradientOrientation = [float(v) for v in direction]
                diffusion.DiffusionGradientDirectionSequence = Sequence([gradient])
            item.MRDiffusionSequence = Sequence([diffusion])
            imaging.add_new(0x03, "FL", float(b))
            imaging.add_new(0x04, "CS", "I" if kind == "ISOTROPIC" else "O" if kind == "DIRECTIONAL" else "N")
            for element, value in zip((0xB0, 0xB1, 0xB2), direction, strict=True):
                block.add_new(element, "FL", float(value))
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = rows, cols
    ds.PixelData = np.stack([f["pixels"] for f in frames]).astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path.parent


#: b-value, LPS direction of the DWI volumes: b=0, three directions, two shells, then the trace (ISOTROPIC)
DWI = [
    (0.0, (0.0, 0.0, 0.0)),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 0.6, 0.8)),
    (2000.0, (-0.48, 0.6, 0.64)),
    (1000.0, (0.0, 0.0, 0.0)),  # the trace: b > 0, no direction
]
GRADIENT_NUMBER = (0x13, "Gradient Orientation Number")  # (2005,1413)
B_NUMBER = (0x12, "Diffusion B-value Number")  # (2005,1412)


def dwi_frames(rng, n_slices: int, order: str, volumes=DWI) -> list[dict]:
    """Frames of a Philips DWI in file order: ``volume-major`` (every slice of a volume, then the next) or
    ``slice-major`` (every volume of a slice); the trace volume last in either."""
    b_numbers = {b: i + 1 for i, b in enumerate(sorted({b for b, _ in volumes}))}
    cells = [(v, k) for v in range(len(volumes)) for k in range(n_slices)]
    if order == "slice-major":
        cells.sort(key=lambda c: (c[1], c[0]))
    frames = []
    for v, k in cells:
        b, direction = volumes[v]
        trace = b > 0 and not np.any(direction)
        frames.append(
            {
                "slice": k,
                "volume": v,
                "pixels": rng.integers(1, 4000, (6, 5)),
                "index": [b_numbers[b], v + 1],
                "b": b,
                "direction": direction,
                "directionality": "ISOTROPIC" if trace else None,
            }
        )
        if frames[-1]["directionality"] is None:
            del frames[-1]["directionality"]
    return frames


#: (FrameType, the private ImageType of (2005,140F), ComplexImageComponent, private ImageTypeMR (2005,1011))
_MAG = (("ORIGINAL", "PRIMARY", "T1", "M"), ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "MAGNITUDE", "M")
_PHASE = (
    ("ORIGINAL", "PRIMARY", "PHASE", "P"),
    ("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"),
    "PHASE",
    "P",
)
IMAGE_TYPE_MR = (0x11, "Private ImageTypeMR")  # (2005,1011)


def echo_frames(rng, n_slices: int, order: str, n_echoes: int = 2) -> list[dict]:
    """Magnitude and phase frames of ``n_echoes`` echoes, each with its own RescaleSlope/Intercept and
    ScaleSlope; ``type-major`` (all magnitude frames first, as the shared B0 file) or ``slice-major``."""
    cells = [(t, e, k) for t in range(2) for e in range(n_echoes) for k in range(n_slices)]
    if order == "slice-major":
        cells.sort(key=lambda c: (c[2], c[1], c[0]))
    frames = []
    for t, e, k in cells:
        frame_type, private_type, component, _ = (_MAG, _PHASE)[t]
        frames.append(
            {
                "slice": k,
                "echo": e + 1,
                "te": 2.3 * (e + 1),
                "type": t,
                "pixels": rng.integers(0, 4096, (6, 5)),
                "index": [t + 1],
                "frame_type": frame_type,
                "private_type": private_type,
                "component": component,
                "slope": round(float(rng.uniform(0.5, 3.0)), 5),
                "intercept": [0.0, -3142.0][t] + float(rng.integers(-5, 6)),
                "scale": round(float(rng.uniform(1e-4, 1e-2)), 8)
                if t == 0
                else round(float(rng.uniform(500, 700)), 3),
            }
        )
    return frames


def _sidecar(path: Path, suffix: str) -> np.ndarray:
    return np.loadtxt(Path(str(path).replace(".nii.gz", "").replace(".nii", "") + suffix), ndmin=2)


# ================================================================================================== tests
_TT = {  # case: attributes per image (v: volume, s: slice); TriggerTime as Philips writes it, per dynamic
    "trigger_time_and_temporal_position": lambda v, s: {
        "TriggerTime": 2000.0 * v,
        "TemporalPositionIdentifier": v + 1,
    },
    "trigger_time_only": lambda v, s: {"TriggerTime": 2000.0 * v, "TemporalPositionIdentifier": None},
    "temporal_position_only": lambda v, s: {"TemporalPositionIdentifier": v + 1},
}


@needs_dcm2niix
@pytest.mark.parametrize("scale_slope", [True, False], ids=["ScaleSlope", "no-ScaleSlope"])
@pytest.mark.parametrize("case", sorted(_TT))
def test_classic_philips_4d_matches_dcm2niix(shared_data, tmp_path, case, scale_slope):
    """One 4D output from both, whatever tells the volumes apart.  With the ScaleSlope dcm2niix writes Philips
    floating-point values (``--philips-float``); without it, the displayed values (RescaleSlope 1.29 kept as
    scl_slope: not the stored integers unscaled)."""
    source, _ = classic_4d(shared_data, tmp_path / "src", _TT[case], scale_slope=scale_slope)
    theirs, _ = dcm2niix(source, tmp_path / "d")
    assert [nib.load(p).shape for p in theirs] == [(10, 12, 4, 3)]
    header_slope = float(nib.load(theirs[0]).dataobj.slope)
    assert header_slope == pytest.approx(4201.875 if scale_slope else 1.2915751, rel=1e-5)
    match(theirs, ours(source, tmp_path / "o"))
    if not scale_slope:  # no ScaleSlope: the displayed values, with or without --philips-float
        assert main(["convert", str(source), str(tmp_path / "display"), "--all"]) == 0
        match(theirs, sorted((tmp_path / "display").glob("*.nii.gz")))


@needs_dcm2niix
@pytest.mark.parametrize("phase", [None, 0], ids=["no-PhaseNumber", "PhaseNumber-0"])
def test_classic_philips_without_phase_number_is_split_by_trigger_time_in_dcm2niix_only(
    shared_data, tmp_path, phase
):
    """dcm2niix stacks Philips images of different TriggerTime only when the private Phase Number (2001,1008)
    is 1 or more (kept: one 4D output, above).  Without it (or 0) it writes one 3D output per TriggerTime
    ('Slices not stacked: trigger time varies'; ``_t2000``, ``_t4000``).  We keep one 4D stack (as dcm2niix does
    with the element present): its volume v is dcm2niix's output of the v-th TriggerTime."""
    numbering = None if phase is None else (lambda v, s: phase)
    source, _ = classic_4d(shared_data, tmp_path / "src", _TT["trigger_time_only"], phase_number=numbering)
    theirs, log = dcm2niix(source, tmp_path / "d")
    assert "trigger time varies" in log
    assert [p.name for p in theirs] == ["d_2001.nii", "d_2001_t2000.nii", "d_2001_t4000.nii"]
    assert all(nib.load(p).shape == (10, 12, 4) for p in theirs)
    (mine,) = ours(source, tmp_path / "o")
    assert nib.load(mine).shape == (10, 12, 4, 3)
    for v, path in enumerate(theirs):
        volume = nib.Nifti1Image(np.asarray(nib.load(mine).dataobj)[..., v], nib.load(mine).affine)
        nib.save(volume, tmp_path / f"v{v}.nii")
        assert match([path], [tmp_path / f"v{v}.nii"])
    # and with the Phase Number present, dcm2niix agrees with the single 4D stack
    kept, _ = classic_4d(
        shared_data, tmp_path / "kept", _TT["trigger_time_only"], phase_number=lambda v, s: v + 1
    )
    theirs, _ = dcm2niix(kept, tmp_path / "dk")
    match(theirs, ours(kept, tmp_path / "ok"))


@needs_dcm2niix
def test_classic_philips_rescale_varying_per_volume_differs_from_dcm2niix(shared_data, tmp_path):
    """RescaleSlope different in each volume (ScaleSlope the same): dcm2niix writes stored x RescaleSlope of
    each file as float data and keeps scl_slope = 1 / ScaleSlope, so its values are displayed value /
    ScaleSlope, not the Philips floating-point value displayed / (RescaleSlope x ScaleSlope).  We write the
    floating-point value of every file (docs/dicom.md)."""
    slopes = [1.2, 1.7, 2.9]
    source, _ = classic_4d(shared_data, tmp_path / "src", lambda v, s: {"RescaleSlope": slopes[v]})
    (theirs,), _ = dcm2niix(source, tmp_path / "d")
    (mine,) = ours(source, tmp_path / "o")
    (a, x), (b, y) = canonical(mine), canonical(theirs)
    assert x.shape == y.shape and np.abs(corners(a) - corners(b)).max() < TOLERANCE_MM
    scale = float(pydicom.dcmread(next(source.iterdir()))[SCALE_SLOPE].value)
    for v, slope in enumerate(slopes):
        assert np.allclose(y[..., v], x[..., v] * slope, rtol=1e-4)  # theirs = ours x RescaleSlope
    assert float(nib.load(theirs).dataobj.slope) == pytest.approx(1 / scale, rel=1e-5)


@needs_dcm2niix
@pytest.mark.parametrize("orientation", ["axial", "oblique"])
@pytest.mark.parametrize("order", ["volume-major", "slice-major"])
def test_enhanced_philips_dwi_matches_dcm2niix(shared_data, tmp_path, order, orientation):
    """Private dimensions (b-value number, gradient number in (2005,140F)), MR Diffusion Sequence per frame,
    the ISOTROPIC trace frames last: the DWI without the trace (its .bval/.bvec) and the _ADC file of every
    frame, from both, in either frame order."""
    iop = (1, 0, 0, 0, 1, 0) if orientation == "axial" else tuple(rotation(14, -9))
    frames = dwi_frames(np.random.default_rng(3), 4, order)
    source = write_enhanced(
        shared_data,
        tmp_path / "src" / "dwi.dcm",
        frames,
        iop=iop,
        private_dimensions=[B_NUMBER, GRADIENT_NUMBER],
    )
    theirs, _ = dcm2niix(source, tmp_path / "d")
    assert [(p.name, nib.load(p).shape) for p in theirs] == [
        ("d_801.nii", (5, 6, 4, 4)),
        ("d_801_ADC.nii", (5, 6, 4, 5)),
    ]
    mine = ours(source, tmp_path / "o")
    found = match(theirs, mine)
    dwi = tmp_path / "o" / found["d_801.nii"]
    their_b, our_b = _sidecar(theirs[0], ".bval"), _sidecar(dwi, ".bval")
    assert their_b.ravel().tolist() == our_b.ravel().tolist() == [0, 1000, 1000, 2000]
    world_theirs = _fsl_to_ras(_sidecar(theirs[0], ".bvec"), nib.load(theirs[0]).affine)
    world_ours = _fsl_to_ras(_sidecar(dwi, ".bvec"), nib.load(dwi).affine)
    expected = np.array([np.asarray(g) * [-1, -1, 1] for _, g in DWI[:4]]).T  # the LPS gradients, in RAS
    assert np.allclose(world_theirs, expected, atol=1e-4) and np.allclose(world_ours, expected, atol=1e-4)


@needs_dcm2niix
def test_enhanced_philips_frames_sharing_one_slice_number(shared_data, tmp_path):
    """Every frame's private Slice Number MR (2001,100A) left at 1 (a copy of one frame's private group):
    dcm2niix writes the slices in reverse order on the same grid; we place each frame by its position."""
    from test_dicom_geometry_dcm2niix import voxels_at

    frames = dwi_frames(np.random.default_rng(5), 4, "volume-major")
    source = write_enhanced(
        shared_data,
        tmp_path / "src" / "dwi.dcm",
        frames,
        private_dimensions=[B_NUMBER, GRADIENT_NUMBER],
        slice_number=lambda k: 1,
    )
    theirs, _ = dcm2niix(source, tmp_path / "d")
    adc = next(p for p in theirs if p.name.endswith("_ADC.nii"))
    mine = next(p for p in ours(source, tmp_path / "o") if p.name.endswith("_adc.nii.gz"))
    (a, x), (b, y) = canonical(mine), canonical(adc)
    assert np.abs(corners(a) - corners(b)).max() < TOLERANCE_MM
    assert np.array_equal(x[:, :, ::-1], y) and not np.array_equal(x, y)
    for frame in frames:
        ipp = np.array([-7.0, 11.0, 23.0]) + frame["slice"] * 3.0 * np.array([0, 0, 1.0])
        found = voxels_at(mine, ipp, np.array([1, 0, 0, 0, 1.0, 0]), (6, 5), (2.0, 2.5), frame["volume"])
        assert np.allclose(found, frame["pixels"], atol=1e-3)


def _uniform_scaling(frame: dict) -> None:
    frame["slope"], frame["intercept"] = (1.29, 0.0) if frame["type"] == 0 else (1.53, -3142.0)
    frame["scale"] = 2.38e-4 if frame["type"] == 0 else 651.74


@needs_dcm2niix
@pytest.mark.parametrize("scaling", ["per-type", "per-frame"])
@pytest.mark.parametrize("order", ["type-major", "slice-major"])
def test_enhanced_philips_echoes_magnitude_phase_match_dcm2niix(shared_data, tmp_path, order, scaling):
    """Two echoes x magnitude/phase in one file, PixelValueTransformationSequence per frame.  With one
    RescaleSlope/Intercept/ScaleSlope per type, dcm2niix writes Philips floating-point values (int16 + scl);
    with them differing per frame it writes float displayed values ("Intensity scale/slope using 0028,1053
    and 0028,1052").  Before, ``--philips-float`` gave floating-point values there too (a mismatch)."""
    frames = echo_frames(np.random.default_rng(2), 4, order)
    if scaling == "per-type":
        for frame in frames:
            _uniform_scaling(frame)
    source = write_enhanced(
        shared_data,
        tmp_path / "src" / "echo.dcm",
        frames,
        private_dimensions=[IMAGE_TYPE_MR],
        echo_dimension=True,
        image_type=_MAG[0],
        number_of_echoes=2,
    )
    theirs, log = dcm2niix(source, tmp_path / "d")
    assert [p.name for p in theirs] == ["d_801_e1.nii", "d_801_e1_ph.nii", "d_801_e2.nii", "d_801_e2_ph.nii"]
    dtypes = {nib.load(p).get_data_dtype() for p in theirs}
    assert dtypes == ({np.dtype("<i2")} if scaling == "per-type" else {np.dtype("<f4")})
    mine = ours(source, tmp_path / "o")
    assert len(mine) == 4
    match(theirs, mine)
    if scaling == "per-frame":  # the displayed values, --philips-float or not
        assert main(["convert", str(source), str(tmp_path / "display"), "--all"]) == 0
        match(theirs, sorted((tmp_path / "display").glob("*.nii.gz")))
