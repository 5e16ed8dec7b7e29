"""Differential check of ``medimg convert`` against the real dcm2niix binary on synthetic series.

The series are made with pydicom from real files of the shared data (their private elements removed, except
where a case needs them), varying what real scanners vary: orientation (oblique in two angles, reversed slice
order, IPP stepping against the normal), file names and order, InstanceNumber, how volumes are told apart
(InstanceNumber, AcquisitionTime, TemporalPositionIdentifier, TriggerTime), echoes, magnitude/phase,
per-file rescale, pixel format, gaps, non-uniform spacing, single slices, localizers, mosaics and enhanced
multi-frame files.  Both converters write every output they make; every dcm2niix output must have an output
of ours with the same shape (volume axis included), every voxel equal in world space (both brought to the
closest canonical voxel order) and every grid corner within 0.05 mm.  Nothing here is compared with values
taken from our own code: the expectations are dcm2niix's files, or (where noted) pydicom's values.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dcm2niix_runner import needs_dcm2niix
from dcm2niix_runner import run_dcm2niix as run_dcm2niix_files
from pydicom.uid import generate_uid

from napari_medimg.cli import main

pytestmark = pytest.mark.shared_data
TOLERANCE_MM = 0.05


# --------------------------------------------------------------------------------------------- templates
_TEMPLATES = {
    "mr": "siemens_xa30_t1w_sag_classic",
    "ge": "ge_epi_fmri_classic_10vol",
    "philips": "philips_fieldmap_classic_2echo_magphase",
    "mosaic": "siemens_mosaic_epi_5sl_2vol",
    "enhanced": "siemens_xa60_enhanced_bold_3vol",
    "ct": "siemens_ct_gantry_tilt",
    "mosaic_hf": "siemens_mosaic_fmri_hf_oblique",
}
_CACHE: dict[str, pydicom.Dataset] = {}


def template(shared_data: Path, kind: str, keep_private: bool = False) -> pydicom.Dataset:
    """A copy of the first file of a shared folder (private elements removed unless asked)."""
    key = f"{kind}/{keep_private}"
    if key not in _CACHE:
        folder = shared_data / "dicom" / _TEMPLATES[kind] / "dicom"
        dataset = pydicom.dcmread(sorted(p for p in folder.iterdir() if p.is_file())[0])
        if not keep_private:
            dataset.remove_private_tags()
        _CACHE[key] = dataset
    return copy.deepcopy(_CACHE[key])


def rotation(tilt_x: float = 0.0, tilt_y: float = 0.0, base: str = "axial") -> np.ndarray:
    """Row and column direction cosines (LPS) of a plane, tilted about x then y by the angles in degrees."""
    rows, columns = {
        "axial": ((1, 0, 0), (0, 1, 0)),
        "sagittal": ((0, 1, 0), (0, 0, -1)),
        "coronal": ((1, 0, 0), (0, 0, -1)),
    }[base]
    a, b = np.radians(tilt_x), np.radians(tilt_y)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    turn = ry @ rx
    return np.concatenate([turn @ np.array(rows, float), turn @ np.array(columns, float)])


@dataclass
class Image:
    """One classic image to write: geometry, pixels and any other attributes."""

    iop: np.ndarray
    ipp: np.ndarray
    pixels: np.ndarray
    instance: int
    attrs: dict


def stack_images(
    rng,
    n: int,
    iop: np.ndarray,
    spacing: float = 3.0,
    shape: tuple[int, int] = (12, 10),
    start=(-20.0, 15.0, -8.0),
    high: int = 4095,
    steps=None,
) -> list[Image]:
    """``n`` slices along row x column, ``spacing`` apart (or at the cumulative ``steps``)."""
    normal = np.cross(iop[:3], iop[3:])
    offsets = np.arange(n) * spacing if steps is None else np.concatenate([[0], np.cumsum(steps)])
    return [
        Image(iop, np.asarray(start) + o * normal, rng.integers(0, high + 1, shape), i + 1, {})
        for i, o in enumerate(offsets)
    ]


def write_classic(
    base: pydicom.Dataset,
    folder: Path,
    images: list[Image],
    rng=None,
    names=None,
    pixel_spacing=(0.9, 1.1),
    signed: bool = False,
    bits_stored: int = 12,
) -> Path:
    """Write the images as one classic series (new UIDs, names shuffled when ``rng`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, frame_uid = generate_uid(), generate_uid()
    order = list(range(len(images)))
    if rng is not None:
        rng.shuffle(order)
    for slot, index in enumerate(order):
        image = images[index]
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ImageOrientationPatient = [round(float(v), 8) for v in image.iop]
        ds.ImagePositionPatient = [round(float(v), 6) for v in image.ipp]
        ds.InstanceNumber = image.instance
        ds.PixelSpacing = list(pixel_spacing)
        normal = np.cross(image.iop[:3], image.iop[3:])
        ds.SliceLocation = round(float(image.ipp @ normal), 6)
        ds.Rows, ds.Columns = image.pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
        ds.PixelRepresentation = int(signed)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        for attr in (
            "SpacingBetweenSlices",
            "WindowCenter",
            "WindowWidth",
            "LargestImagePixelValue",
            "ReferencedImageSequence",  # a template's references to other images would confuse dcm2niix
            "SourceImageSequence",
        ):
            if attr in ds:
                del ds[attr]
        for key, value in image.attrs.items():
            if value is None:
                if key in ds:
                    del ds[key]
            else:
                setattr(ds, key, value)
        ds.PixelData = image.pixels.astype("<i2" if signed else "<u2").tobytes()
        ds["PixelData"].VR = "OW"
        name = names(slot, image) if names else f"img{slot:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
    return folder


# -------------------------------------------------------------------------------------------- comparison
def corners(image) -> np.ndarray:
    index = np.array(list(itertools.product(*[(0, n - 1) for n in image.shape[:3]])), float)
    return index @ image.affine[:3, :3].T + image.affine[:3, 3]


def run_dcm2niix(source: Path, out: Path) -> tuple[list[Path], str]:
    written, log, _ = run_dcm2niix_files(source, out)
    return written, log


def run_ours(source: Path, out: Path) -> list[Path]:
    assert main(["convert", str(source), str(out), "--all"]) == 0
    return sorted(out.glob("*.nii.gz"))


def canonical(path: Path):
    image = nib.as_closest_canonical(nib.load(path))
    return image, np.asarray(image.get_fdata(), np.float64)


def same_image(ours, theirs, atol: float = 1e-3) -> str | None:
    """None when the two NIfTIs match (shape, corners, voxels), else why not."""
    (a, x), (b, y) = ours, theirs
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    error = float(np.abs(corners(a) - corners(b)).max())
    if error >= TOLERANCE_MM:
        return f"corners off by {error:.3f} mm"
    if not np.allclose(x, y, rtol=1e-5, atol=atol):
        return f"voxels differ (max {float(np.abs(x - y).max()):g})"
    return None


def compare(source: Path, tmp_path: Path, atol: float = 1e-3) -> dict:
    """Both converters on ``source``: every dcm2niix output matched by one of ours; returns the details."""
    theirs, log = run_dcm2niix(source, tmp_path / "dcm2niix")
    ours = run_ours(source, tmp_path / "ours")
    loaded = [canonical(p) for p in ours]
    unmatched, reasons = [], {}
    used: set[int] = set()
    for path in theirs:
        reference = canonical(path)
        why = []
        for index, candidate in enumerate(loaded):
            if index in used:
                continue
            reason = same_image(candidate, reference, atol)
            if reason is None:
                used.add(index)
                break
            why.append(f"{ours[index].name}: {reason}")
        else:
            unmatched.append(path.name)
            reasons[path.name] = why
    return {
        "theirs": [p.name for p in theirs],
        "ours": [p.name for p in ours],
        "unmatched": unmatched,
        "reasons": reasons,
        "extra_ours": [ours[i].name for i in range(len(ours)) if i not in used],
        "log": log,
    }


def assert_same(result: dict, n_outputs: int | None = None) -> None:
    assert result["theirs"], f"dcm2niix wrote nothing: {result['log']}"
    assert not result["unmatched"], result["reasons"]
    if n_outputs is not None:
        assert len(result["theirs"]) == n_outputs, result["log"]
    assert not result["extra_ours"], (result["extra_ours"], result["theirs"])


# ------------------------------------------------------------------------------------------- mosaics
def read_csa(raw: bytes) -> list[list]:
    """A CSA2 header as ``[name, vm, vr, syngodt, last, [item bytes]]`` entries (everything kept)."""
    import struct

    assert raw[:4] == b"SV10"
    count = struct.unpack_from("<I", raw, 8)[0]
    offset, tags = 16, []
    for _ in range(count):
        name, vm, vr, syngodt, n_items, last = struct.unpack_from("<64si4siii", raw, offset)
        offset += 84
        items = []
        for _ in range(n_items):
            length = struct.unpack_from("<4i", raw, offset)[1]
            offset += 16
            items.append(raw[offset : offset + length])
            offset += (length + 3) // 4 * 4
        tags.append([name.split(b"\0")[0].decode(), vm, vr, syngodt, last, items])
    return tags


def write_csa(tags: list[list]) -> bytes:
    import struct

    out = bytearray(b"SV10\x04\x03\x02\x01" + struct.pack("<II", len(tags), 77))
    for name, vm, vr, syngodt, last, items in tags:
        out += struct.pack("<64si4siii", name.encode(), vm, vr, syngodt, len(items), last)
        for item in items:
            out += struct.pack("<4i", len(item), len(item), 77, len(item))
            out += item + b"\0" * ((-len(item)) % 4)
    return bytes(out)


def set_csa(tags: list[list], name: str, values: list) -> None:
    for tag in tags:
        if tag[0] == name:
            tag[5] = [(f"{v:.8f}" if isinstance(v, float) else str(v)).encode() + b"\0" for v in values]
            return
    raise KeyError(name)


def write_mosaic(
    base: pydicom.Dataset,
    folder: Path,
    rng,
    n_slices: int,
    n_volumes: int,
    iop: np.ndarray,
    head_to_foot: bool = False,
    tile: tuple[int, int] = (8, 8),
    spacing: float = 3.5,
    first=(-10.0, 12.0, -20.0),
    pixel_spacing=(2.5, 2.5),
) -> tuple[Path, np.ndarray]:
    """Siemens mosaics, one file per volume; returns the folder and the tiles ``(volume, slice, y, x)`` in
    acquisition (tile) order.  Slice k is at ``first + k * spacing * n``, ``n = ±(row x column)``."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = int(np.ceil(np.sqrt(n_slices)))
    ty, tx = tile
    rows, cols = grid * ty, grid * tx
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col) * (-1 if head_to_foot else 1)
    dy, dx = pixel_spacing
    corner = np.asarray(first) - row * dx * (cols - tx) / 2 - col * dy * (rows - ty) / 2
    image_csa = read_csa(base.get_private_item(0x0029, 0x10, "SIEMENS CSA HEADER").value)
    set_csa(image_csa, "NumberOfImagesInMosaic", [n_slices])
    set_csa(image_csa, "SliceNormalVector", [float(v) for v in normal])
    set_csa(image_csa, "MosaicRefAcqTimes", [float(60 * k) for k in range(n_slices)])
    series_csa = read_csa(base.get_private_item(0x0029, 0x20, "SIEMENS CSA HEADER").value)
    for tag in series_csa:
        if tag[0] == "MrPhoenixProtocol":
            text = tag[5][0].decode("latin-1")
            lines = [ln for ln in text.split("\n") if not ln.startswith("sSliceArray.asSlice[")]
            size = next(i for i, ln in enumerate(lines) if ln.startswith("sSliceArray.lSize"))
            lines[size] = f"sSliceArray.lSize\t = \t{n_slices}"
            names = {0: "dSag", 1: "dCor", 2: "dTra"}
            new = []
            for k in range(n_slices):
                ras = np.asarray(first) + k * spacing * normal  # the protocol's dSag/dCor/dTra are LPS
                for axis in range(3):
                    new.append(f"sSliceArray.asSlice[{k}].sPosition.{names[axis]}\t = \t{ras[axis]:.6f}")
                    new.append(f"sSliceArray.asSlice[{k}].sNormal.{names[axis]}\t = \t{normal[axis]:.6f}")
            lines[size + 1 : size + 1] = new
            tag[5][0] = "\n".join(lines).encode("latin-1")
    series_uid, tiles = generate_uid(), []
    for v in range(n_volumes):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber, ds.AcquisitionNumber = v + 1, v + 1
        ds.AcquisitionTime = f"1200{v * 2:02d}.000000"
        ds.ImageOrientationPatient = [round(float(x), 8) for x in iop]
        ds.ImagePositionPatient = [round(float(x), 6) for x in corner]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SpacingBetweenSlices = spacing
        ds.Rows, ds.Columns = rows, cols
        ds.AcquisitionMatrix = [tx, 0, 0, ty]
        ds.get_private_item(0x0019, 0x0A, "SIEMENS MR HEADER").value = n_slices
        ds.get_private_item(0x0029, 0x10, "SIEMENS CSA HEADER").value = write_csa(image_csa)
        ds.get_private_item(0x0029, 0x20, "SIEMENS CSA HEADER").value = write_csa(series_csa)
        volume = rng.integers(1, 4096, (n_slices, ty, tx))
        mosaic = np.zeros((rows, cols), np.uint16)
        for k in range(n_slices):
            r, c = divmod(k, grid)
            mosaic[r * ty : (r + 1) * ty, c * tx : (c + 1) * tx] = volume[k]
        ds.PixelData = mosaic.astype("<u2").tobytes()
        for attr in ("WindowCenter", "WindowWidth", "LargestImagePixelValue", "SmallestImagePixelValue"):
            if attr in ds:
                del ds[attr]
        ds.save_as(folder / f"mosaic{v:03d}", enforce_file_format=True)
        tiles.append(volume)
    return folder, np.stack(tiles)


# ------------------------------------------------------------------------------------------- enhanced
@dataclass
class Frame:
    """One enhanced frame: geometry, pixels and its (StackID, InStackPositionNumber, TemporalPositionIndex)."""

    iop: np.ndarray
    ipp: np.ndarray
    pixels: np.ndarray
    stack: int
    in_stack: int
    temporal: int


def write_enhanced(base: pydicom.Dataset, path: Path, frames: list[Frame], pixel_spacing=(1.5, 1.25)) -> Path:
    """One Enhanced MR file holding ``frames`` in the given order (all geometry per frame)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = copy.deepcopy(base)
    ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    template_frame = ds.PerFrameFunctionalGroupsSequence[0]
    items = []
    for frame in frames:
        item = copy.deepcopy(template_frame)
        item.PlanePositionSequence[0].ImagePositionPatient = [round(float(v), 6) for v in frame.ipp]
        item.PlaneOrientationSequence[0].ImageOrientationPatient = [round(float(v), 8) for v in frame.iop]
        item.PixelMeasuresSequence[0].PixelSpacing = list(pixel_spacing)
        content = item.FrameContentSequence[0]
        content.StackID = str(frame.stack)
        content.InStackPositionNumber = frame.in_stack
        content.TemporalPositionIndex = frame.temporal
        content.FrameAcquisitionNumber = frame.temporal
        content.DimensionIndexValues = [frame.stack, frame.in_stack, frame.temporal]
        content.FrameAcquisitionDateTime = f"2024100414{24 + frame.temporal:02d}00.000000"
        content.FrameReferenceDateTime = content.FrameAcquisitionDateTime
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence(items)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames[0].pixels.shape
    ds.PixelData = np.stack([f.pixels for f in frames]).astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path.parent


def enhanced_frames(rng, stacks, n_volumes: int, shape=(10, 12)) -> list[Frame]:
    """``stacks``: ``[(iop, first position, n_slices, spacing)]``; frames in (stack, volume, slice) order."""
    frames = []
    for s, (iop, start, n, spacing) in enumerate(stacks):
        normal = np.cross(iop[:3], iop[3:])
        for t in range(n_volumes):
            for k in range(n):
                position = np.asarray(start, float) + k * spacing * normal
                frames.append(Frame(iop, position, rng.integers(0, 4096, shape), s + 1, k + 1, t + 1))
    return frames


def voxels_at(path: Path, ipp, iop, shape, pixel_spacing, volume: int | None = None) -> np.ndarray:
    """The values a NIfTI holds at the world positions of one DICOM image's pixels (nearest voxel, which must
    lie within 0.05 mm of the pixel)."""
    image = nib.load(path)
    data = np.asarray(image.get_fdata())
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    dy, dx = pixel_spacing
    lps = (
        np.asarray(ipp)[:, None] + np.outer(iop[:3], cols.ravel() * dx) + np.outer(iop[3:], rows.ravel() * dy)
    )
    ras = lps * np.array([[-1], [-1], [1]])
    index = np.linalg.inv(image.affine) @ np.vstack([ras, np.ones(ras.shape[1])])
    nearest = np.round(index[:3]).astype(int)
    assert np.abs(image.affine[:3, :3] @ (index[:3] - nearest)).max() < TOLERANCE_MM
    upper = np.asarray(data.shape[:3])[:, None] - 1
    assert np.all(nearest >= 0) and np.all(nearest <= upper), "pixel outside the NIfTI grid"
    values = data[nearest[0], nearest[1], nearest[2]] if volume is None else data[(*nearest, volume)]
    return values.reshape(shape)


# ------------------------------------------------------------------------------------------------ cases
def _rng(seed: int):
    return np.random.default_rng(seed)


def _classic(kind: str, images_of, **options):
    def make(shared_data: Path, folder: Path, rng) -> Path:
        return write_classic(template(shared_data, kind), folder, images_of(rng), rng, **options)

    return make


def _scrambled_instances(rng):
    images = stack_images(rng, 8, rotation(5, 0))
    for number, image in zip(rng.permutation(8), images, strict=True):
        image.instance = int(number) + 1
    return images


def volumes_of(rng, n_volumes, n_slices, iop, instance, attrs, high=4095) -> list[Image]:
    """``n_volumes`` images at each of ``n_slices`` positions; ``instance(v, s)``, ``attrs(v, s)``."""
    base = stack_images(rng, n_slices, iop)
    return [
        Image(b.iop, b.ipp, rng.integers(0, high + 1, b.pixels.shape), instance(v, s), attrs(v, s))
        for v in range(n_volumes)
        for s, b in enumerate(base)
    ]


def _time_major(n_slices):
    return lambda v, s: v * n_slices + s + 1


def _rescaled(rng):
    images = stack_images(rng, 6, rotation(0, 0))
    slopes, intercepts = [1.0, 2.0, 0.5, 1.5, 1.0, 3.0], [-1024, 0, 10, -5.5, 0, 100]
    for image, slope, intercept in zip(images, slopes, intercepts, strict=True):
        image.attrs = {"RescaleSlope": slope, "RescaleIntercept": intercept}
    return images


def _signed(rng):
    images = stack_images(rng, 5, rotation(0, 0))
    for image in images:
        image.pixels = image.pixels - 2048
    return images


def _localizer(rng):
    images = []
    for base in ("axial", "sagittal", "coronal"):
        for image in stack_images(rng, 3, rotation(base=base), spacing=5.0):
            image.instance = len(images) + 1
            images.append(image)
    return images


_PHASE_TYPES = [["ORIGINAL", "PRIMARY", "M", "ND"], ["ORIGINAL", "PRIMARY", "P", "ND"]]
AGREEING = {  # case: (writer, number of dcm2niix outputs)
    "axial": (_classic("mr", lambda r: stack_images(r, 6, rotation())), 1),
    "sagittal": (_classic("mr", lambda r: stack_images(r, 6, rotation(base="sagittal"))), 1),
    "coronal": (_classic("mr", lambda r: stack_images(r, 6, rotation(base="coronal"))), 1),
    "oblique_two_angles": (_classic("mr", lambda r: stack_images(r, 7, rotation(17, -23))), 1),
    "oblique_sagittal": (_classic("mr", lambda r: stack_images(r, 7, rotation(31, 12, "sagittal"))), 1),
    "ipp_against_normal": (
        _classic("mr", lambda r: stack_images(r, 7, rotation(10, 20, "coronal"), spacing=-2.5)),
        1,
    ),
    "instance_not_spatial": (_classic("mr", _scrambled_instances), 1),
    "single_slice": (_classic("mr", lambda r: stack_images(r, 1, rotation(12, 7))), 1),
    "ge_4d_by_instance_signed16": (
        _classic(
            "ge",
            lambda r: volumes_of(r, 4, 5, rotation(8, 0), _time_major(5), lambda v, s: {}, 30000),
            signed=True,
            bits_stored=16,
        ),
        1,
    ),
    "4d_acquisition_time": (
        _classic(
            "mr",
            lambda r: volumes_of(
                r, 3, 4, rotation(0, 9), _time_major(4), lambda v, s: {"AcquisitionTime": f"1200{v:02d}.5"}
            ),
        ),
        1,
    ),
    "4d_temporal_position": (
        _classic(
            "ge",
            lambda r: volumes_of(
                r,
                3,
                4,
                rotation(base="coronal"),
                _time_major(4),
                lambda v, s: {"TemporalPositionIdentifier": v + 1},
            ),
        ),
        1,
    ),
    "4d_trigger_time": (
        _classic(
            "mr",
            lambda r: volumes_of(
                r, 3, 4, rotation(base="sagittal"), _time_major(4), lambda v, s: {"TriggerTime": 40.0 * v + 5}
            ),
        ),
        1,
    ),
    "echoes_by_echo_time_only": (
        _classic(
            "mr",
            lambda r: volumes_of(
                r,
                2,
                5,
                rotation(3, 4),
                _time_major(5),
                lambda v, s: {"EchoTime": [4.1, 9.3][v], "EchoNumbers": None},
            ),
        ),
        2,
    ),
    "three_echoes_interleaved": (
        _classic(
            "mr",
            lambda r: volumes_of(
                r,
                3,
                5,
                rotation(3, 4),
                lambda v, s: s * 3 + v + 1,
                lambda v, s: {"EchoTime": 4.1 + 5 * v, "EchoNumbers": v + 1},
            ),
        ),
        3,
    ),
    "magnitude_phase": (
        _classic(
            "mr",
            lambda r: volumes_of(
                r, 2, 5, rotation(0, 6), _time_major(5), lambda v, s: {"ImageType": _PHASE_TYPES[v]}
            ),
        ),
        2,
    ),
    "ct_rescale_per_file": (_classic("ct", _rescaled), 1),
    "signed_12_bits": (_classic("mr", _signed, signed=True, bits_stored=12), 1),
    "unsigned_16_bits": (
        _classic("mr", lambda r: stack_images(r, 5, rotation(0, 0), high=65535), bits_stored=16),
        1,
    ),
    "three_plane_localizer": (_classic("mr", _localizer), 3),
}


@needs_dcm2niix
@pytest.mark.parametrize("case", sorted(AGREEING))
def test_classic_series_match_dcm2niix(shared_data, tmp_path, case):
    make, n_outputs = AGREEING[case]
    rng = _rng(sorted(AGREEING).index(case))
    source = make(shared_data, tmp_path / "src", rng)
    assert_same(compare(source, tmp_path), n_outputs)


@needs_dcm2niix
@pytest.mark.parametrize(
    "n_slices, head_to_foot, tilt",
    [(5, False, (0, 0)), (5, True, (9, -5)), (27, True, (0, 0)), (27, False, (-12, 7)), (33, True, (-12, 7))],
)
def test_mosaics_with_odd_tile_counts_match_dcm2niix(shared_data, tmp_path, n_slices, head_to_foot, tilt):
    iop = rotation(*tilt)
    normal = np.cross(iop[:3], iop[3:]) * (-1 if head_to_foot else 1)
    folder, tiles = write_mosaic(
        template(shared_data, "mosaic", keep_private=True),
        tmp_path / "src",
        _rng(n_slices),
        n_slices,
        2,
        iop,
        head_to_foot=head_to_foot,
    )
    result = compare(folder, tmp_path)
    assert_same(result, 1)
    # and both put tile k where it was written: first tile + k * spacing * the CSA slice normal
    (ours,) = (tmp_path / "ours").glob("*.nii.gz")
    for k in (0, n_slices // 2, n_slices - 1):
        ipp = np.array([-10.0, 12.0, -20.0]) + k * 3.5 * normal
        found = voxels_at(ours, ipp, iop, tiles.shape[2:], (2.5, 2.5), volume=1)
        assert np.array_equal(found, tiles[1, k])


# ------------------------------------------------------------------- where we differ from dcm2niix (on purpose)
def _volume_permutation(ours: np.ndarray, theirs: np.ndarray) -> list[int]:
    """For each dcm2niix volume, the index of our volume with the same voxels."""
    assert ours.shape == theirs.shape
    return [
        next(j for j in range(ours.shape[3]) if np.array_equal(theirs[..., i], ours[..., j]))
        for i in range(theirs.shape[3])
    ]


@needs_dcm2niix
@pytest.mark.parametrize(
    "kind, attribute",
    [
        ("mr", lambda v: {"AcquisitionTime": f"1200{10 + 2 * v:02d}.5"}),
        ("ge", lambda v: {"TemporalPositionIdentifier": v + 1}),
        ("mr", lambda v: {"TriggerTime": 40.0 * v + 5}),
    ],
    ids=["AcquisitionTime", "TemporalPositionIdentifier", "TriggerTime"],
)
def test_volume_order_follows_the_time_attribute_where_dcm2niix_follows_instance_number(
    shared_data, tmp_path, kind, attribute
):
    """InstanceNumber blocks in the order 2, 0, 3, 1 of the volumes: dcm2niix orders volumes by
    InstanceNumber alone, we by the time attribute (docs/dicom.md); the same four volumes either way."""
    rng, blocks = _rng(11), [2, 0, 3, 1]
    images = volumes_of(
        rng, 4, 5, rotation(8, 0), lambda v, s: blocks[v] * 5 + s + 1, lambda v, s: attribute(v)
    )
    source = write_classic(template(shared_data, kind), tmp_path / "src", images, rng)
    (theirs,), _ = run_dcm2niix(source, tmp_path / "dcm2niix")
    (ours,) = run_ours(source, tmp_path / "ours")
    (a, x), (b, y) = canonical(ours), canonical(theirs)
    assert np.abs(corners(a) - corners(b)).max() < TOLERANCE_MM
    assert _volume_permutation(x, y) == [blocks.index(i) for i in range(4)]  # theirs: instance order
    for v in range(4):  # ours: volume v is the one written with attribute(v)
        first = images[v * 5]
        assert np.array_equal(
            voxels_at(ours, first.ipp, first.iop, first.pixels.shape, (0.9, 1.1), v), first.pixels
        )


@needs_dcm2niix
def test_missing_slice_keeps_true_positions_where_dcm2niix_writes_an_uneven_stack(shared_data, tmp_path):
    """One slice of 8 missing: dcm2niix writes the 7 slices as if equidistant (wrong positions past the gap,
    with a warning) plus an interpolated ``_Eq`` copy; we insert one blank slice, which keeps every slice at its
    true position and spans what dcm2niix's ``_Eq`` copy spans."""
    rng = _rng(23)
    images = stack_images(rng, 8, rotation(4, 0))
    del images[4]
    source = write_classic(template(shared_data, "mr"), tmp_path / "src", images, rng)
    theirs, log = run_dcm2niix(source, tmp_path / "dcm2niix")
    assert "Interslice distance varies" in log
    raw, equidistant = sorted(theirs, key=lambda p: "_Eq" in p.name)
    (ours,) = run_ours(source, tmp_path / "ours")
    (a, x), (b, y), (c, _) = canonical(ours), canonical(raw), canonical(equidistant)
    assert a.shape[2] == 8 and b.shape[2] == 7
    assert np.abs(corners(a) - corners(c)).max() < TOLERANCE_MM
    blank = [k for k in range(8) if not x[:, :, k].any()]
    assert len(blank) == 1
    assert np.array_equal(np.delete(x, blank, axis=2), y)  # the same 7 images, in the same order
    for image in images:
        assert np.array_equal(
            voxels_at(ours, image.ipp, image.iop, image.pixels.shape, (0.9, 1.1)), image.pixels
        )


def _check_frames(path: Path, frames: list[Frame], volume_of=lambda f: None) -> None:
    for frame in frames:
        found = voxels_at(path, frame.ipp, frame.iop, frame.pixels.shape, (1.5, 1.25), volume_of(frame))
        assert np.array_equal(found, frame.pixels)


@needs_dcm2niix
def test_enhanced_frames_in_random_order(shared_data, tmp_path):
    """Frames stored in random order (3 volumes x 6 slices, oblique; and 6 sagittal slices stepping against the
    normal): every frame lands at its own position and volume.  dcm2niix 1.0.20260724 takes these geometries
    from the frames' file order and mixes slices of different volumes; we do not follow it there."""
    rng = _rng(99)
    frames = enhanced_frames(rng, [(rotation(7, -4), (-5, 3, -20), 6, 2.0)], 3)
    rng.shuffle(frames)
    source = write_enhanced(template(shared_data, "enhanced"), tmp_path / "a" / "src" / "f", frames)
    (ours,) = run_ours(source, tmp_path / "a" / "ours")
    assert nib.load(ours).shape == (12, 10, 6, 3)
    _check_frames(ours, frames, lambda f: f.temporal - 1)
    single = enhanced_frames(rng, [(rotation(base="sagittal"), (-5, 3, -20), 6, -2.0)], 1)
    rng.shuffle(single)
    source = write_enhanced(template(shared_data, "enhanced"), tmp_path / "b" / "src" / "f", single)
    (ours,) = run_ours(source, tmp_path / "b" / "ours")
    _check_frames(ours, single)
    # in file order (not shuffled) dcm2niix and we agree
    ordered = enhanced_frames(rng, [(rotation(7, -4), (-5, 3, -20), 6, 2.0)], 3)
    source = write_enhanced(template(shared_data, "enhanced"), tmp_path / "c" / "src" / "f", ordered)
    assert_same(compare(source, tmp_path / "c"), 1)


@needs_dcm2niix
def test_enhanced_stacks(shared_data, tmp_path):
    """Several StackIDs in one file.  Two orthogonal stacks: dcm2niix refuses ("slice orientation varies"),
    we write one NIfTI per stack.  Two parallel slabs: dcm2niix stacks them as one uneven volume, we keep the
    two stacks (StackID says they are separate)."""
    rng = _rng(7)
    frames = enhanced_frames(
        rng, [(rotation(), (-5, 3, -20), 4, 2.0), (rotation(base="coronal"), (-5, 3, 10), 5, 2.5)], 2
    )
    rng.shuffle(frames)
    source = write_enhanced(template(shared_data, "enhanced"), tmp_path / "a" / "src" / "f", frames)
    theirs, log = run_dcm2niix(source, tmp_path / "a" / "dcm2niix")
    assert theirs == [] and "orientation varies" in log
    ours = run_ours(source, tmp_path / "a" / "ours")
    assert sorted(nib.load(p).shape for p in ours) == [(12, 10, 4, 2), (12, 10, 5, 2)]
    for path in ours:
        n_slices = nib.load(path).shape[2]
        _check_frames(
            path, [f for f in frames if f.stack == (1 if n_slices == 4 else 2)], lambda f: f.temporal - 1
        )
    slabs = enhanced_frames(rng, [(rotation(), (-5, 3, -20), 4, 2.0), (rotation(), (-5, 3, 10), 4, 2.0)], 1)
    source = write_enhanced(template(shared_data, "enhanced"), tmp_path / "b" / "src" / "f", slabs)
    (theirs,), _ = run_dcm2niix(source, tmp_path / "b" / "dcm2niix")
    assert nib.load(theirs).shape == (12, 10, 8)
    ours = run_ours(source, tmp_path / "b" / "ours")
    assert [nib.load(p).shape for p in ours] == [(12, 10, 4), (12, 10, 4)]
    # named by their StackID (they were 'none_1' and 'none_2', from the frames' FrameType value NONE)
    assert [p.name.split(".")[0].rsplit("_", 1)[-1] for p in ours] == ["stack1", "stack2"]
    for path, stack in zip(ours, (1, 2), strict=True):
        _check_frames(path, [f for f in slabs if f.stack == stack])


@needs_dcm2niix
def test_position_major_instance_numbers(shared_data, tmp_path):
    """Cardiac-like: InstanceNumber runs through the trigger times at each position.  dcm2niix (sorting by
    InstanceNumber) takes the slice direction from two images at one position and writes a zero slice axis;
    we place every image by position and TriggerTime."""
    rng = _rng(14)
    images = volumes_of(
        rng, 3, 4, rotation(), lambda v, s: s * 3 + v + 1, lambda v, s: {"TriggerTime": 40.0 * v + 5}
    )
    source = write_classic(template(shared_data, "mr"), tmp_path / "src", images, rng)
    (theirs,), log = run_dcm2niix(source, tmp_path / "dcm2niix")
    assert np.abs(nib.load(theirs).affine[:3, 2]).max() < 1e-6  # dcm2niix: no slice axis
    (ours,) = run_ours(source, tmp_path / "ours")
    assert nib.load(ours).shape == (10, 12, 4, 3)
    for index, image in enumerate(images):
        volume = index // 4
        assert np.array_equal(
            voxels_at(ours, image.ipp, image.iop, image.pixels.shape, (0.9, 1.1), volume), image.pixels
        )
