"""Placing one stack's images in space and time: slices by position, volumes by a documented order.

Slices: ordered by the projection of ImagePositionPatient on the slice normal (row x column of
ImageOrientationPatient), spacing from those projections (never SliceThickness), gaps filled with blank
slices only while plausible (:data:`MAX_FILL_FRACTION`), gantry tilt detected from the step direction.

Volumes (:data:`VOLUME_ORDER`): images sharing a position within one stack are volumes, not duplicates.  At
each position they are sorted by the enhanced DimensionIndexValues that index time or diffusion
(TemporalPositionIndex, ...), then TemporalPositionIdentifier, TriggerTime, AcquisitionTime
(FrameAcquisitionDateTime), InstanceNumber and file name; the k-th image at every position belongs to volume
k.  Only a second copy of one image (same SOPInstanceUID and frame), or an extra image at a position whose
pixel data is identical to another one there, is a duplicate; an image that still cannot be placed is
returned in ``StackGeometry.unplaced`` (the caller makes it a separate stack that names its files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GeometryError
from .records import FrameRecord, SeriesHeader

__all__ = ["StackGeometry", "place_stack", "VOLUME_ORDER", "MAX_FILL_FRACTION"]

VOLUME_ORDER = (
    "enhanced DimensionIndexValues (TemporalPositionIndex, diffusion), TemporalPositionIdentifier, "
    "TriggerTime, AcquisitionTime (times after midnight follow the evening's in a stack acquired across it), "
    "InstanceNumber, file name"
)
#: acquisition times of day (s) that spread over more than this in one stack were taken across midnight
_MIDNIGHT_SPREAD_S = 12 * 3600
#: gaps are filled with blank slices only while the blanks are at most this fraction of the present slices
MAX_FILL_FRACTION = 1.0
DUPLICATE_TOL_MM = 0.01
_TILT_TOL = 1e-3  # |sin| of the angle between the slice step and the normal above which a stack is sheared
_ORTHOGONAL_WARN = 1e-3  # |cos| between IOP row and column above which a warning is given
_ORTHOGONAL_REFUSE = 0.02  # ... and above which the orientation is refused (about 88.9 degrees)


@dataclass
class StackGeometry:
    """Where every image of a stack goes: ``slots[volume][slice]`` and the grid's world geometry.

    Attributes
    ----------
    slots : list of list
        ``[volume][slice]`` → FrameRecord, or None for a blank image.
    spacing, origin, direction
        The grid: ``(dz, dy, dx)`` mm, LPS position of voxel 0, columns = LPS directions of z, y, x.
    warnings : list of str
        What the user should know (gaps, duplicates, tilt, ...).
    source : str
        How the geometry was derived, in words.
    tilt_degrees, shear_pixels
        Gantry tilt and the in-plane shift per slice it implies.
    unplaced : list of FrameRecord
        Images that could not be placed in a volume.
    implausible_gap : bool
        True when gaps were too large to fill.
    """

    slots: list[list[FrameRecord | None]]
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray
    warnings: list[str]
    source: str
    tilt_degrees: float = 0.0
    shear_pixels: tuple[float, float] = (0.0, 0.0)  # in-plane (row, column) shift per slice index when tilted
    unplaced: list[FrameRecord] = field(default_factory=list)
    implausible_gap: bool = False


def _volume_order(frame: FrameRecord, across_midnight: bool = False) -> tuple:
    temporal, trigger, time = frame.temporal_position, frame.trigger_time, frame.acquisition_time
    if across_midnight and time is not None and time < _MIDNIGHT_SPREAD_S:
        time += 24 * 3600  # the next day's morning, after the evening's images
    return (  # unknown values (0, 0) sort before known ones (1, value)
        frame.volume_key,
        (0, 0) if temporal is None else (1, temporal),
        (0, 0) if trigger is None else (1, trigger),
        (0, 0) if time is None else (1, time),
        frame.instance,
        frame.path,
        frame.frame or 0,
    )


def _pixel_spacing(first: FrameRecord, notes: list[str]) -> tuple[float, float, str]:
    if first.pixel_spacing is None:
        notes.append("The files give no pixel spacing; 1 mm pixels are assumed, so sizes are not in real mm.")
        return 1.0, 1.0, "pixel spacing unknown (1 mm assumed)"
    dy, dx = first.pixel_spacing
    if dy <= 0 or dx <= 0:
        raise GeometryError(f"pixel spacing {dy} x {dx} mm is not positive")
    return dy, dx, "PixelSpacing as (row, column) = (dy, dx)"


def _orientation(first: FrameRecord, notes: list[str]):
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    if not (0.5 < np.linalg.norm(row_cos) < 1.5 and 0.5 < np.linalg.norm(col_cos) < 1.5):
        raise GeometryError("ImageOrientationPatient does not hold two perpendicular unit vectors")
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    cosine = abs(float(row_cos @ col_cos))
    angle = float(np.degrees(np.arccos(min(cosine, 1.0))))
    if cosine > _ORTHOGONAL_REFUSE:
        raise GeometryError(
            f"ImageOrientationPatient does not hold two perpendicular unit vectors: rows and columns are "
            f"{angle:.1f} degrees apart"
        )
    if cosine > _ORTHOGONAL_WARN:
        notes.append(
            f"ImageOrientationPatient rows and columns are {angle:.2f} degrees apart, not 90; the slice normal "
            "is their cross product and the grid is treated as orthogonal."
        )
    normal = np.cross(row_cos, col_cos)
    return row_cos, col_cos, normal / np.linalg.norm(normal)


def _volume_orders(frames: list[FrameRecord]) -> Callable[[FrameRecord], tuple]:
    """:func:`_volume_order` as a sort key computed once per stored image: it reads only what the tiles of a
    mosaic share (a 200-file mosaic has 7,200 tiles and 200 keys).  Acquisition times are seconds of the day:
    when a stack's spread over more than 12 hours, it was acquired across midnight, and the morning's follow."""
    units: dict = {}
    for frame in frames:
        units.setdefault((frame.path, frame.frame), frame)
    times = [f.acquisition_time for f in units.values() if f.acquisition_time is not None]
    across_midnight = bool(times) and max(times) - min(times) > _MIDNIGHT_SPREAD_S
    keys = {unit: _volume_order(frame, across_midnight) for unit, frame in units.items()}
    return lambda frame: keys[frame.path, frame.frame]


def _cluster(frames: list[FrameRecord], normal: np.ndarray) -> tuple[list[list[FrameRecord]], np.ndarray]:
    """Frames grouped by position along the normal (ascending), each group in volume order."""
    projections = np.array([f.position for f in frames]).reshape(-1, 3) @ normal
    order = np.argsort(projections, kind="stable")
    clusters: list[list[FrameRecord]] = []
    starts: list[float] = []
    start = -np.inf
    for index, projection in zip(order.tolist(), projections[order].tolist(), strict=True):
        if projection - start < DUPLICATE_TOL_MM:
            clusters[-1].append(frames[index])
        else:
            clusters.append([frames[index]])
            starts.append(projection)
            start = projection
    key = _volume_orders(frames)
    return [sorted(c, key=key) for c in clusters], np.asarray(starts)


def _deduplicate(
    clusters: list[list[FrameRecord]], same_pixels: Callable[[FrameRecord, FrameRecord], bool] | None, notes
) -> tuple[int, list[FrameRecord]]:
    """Drop true duplicates; returns the number of volumes and the images that cannot be placed."""
    copies = []
    for index, cluster in enumerate(clusters):  # the same image twice (a copied file)
        if len({(frame.sop_uid, frame.frame, frame.region) for frame in cluster}) == len(cluster):
            continue  # no image twice (the common case, checked at once)
        seen, kept = set(), []
        for frame in cluster:
            identity = (frame.sop_uid, frame.frame, frame.region)
            if frame.sop_uid and identity in seen:
                copies.append(frame)
            else:
                seen.add(identity)
                kept.append(frame)
        clusters[index] = kept

    def most_common() -> int:  # ties: the smaller count (an extra image is likelier than many missing)
        counts = Counter(len(c) for c in clusters)
        return max(counts.items(), key=lambda item: (item[1], -item[0]))[0]

    expected = most_common()
    identical = []
    if same_pixels is not None:  # only positions holding more images than expected are read
        for index, cluster in enumerate(clusters):
            if len(cluster) <= expected:
                continue
            kept = []
            for frame in sorted(cluster, key=lambda f: f.instance):
                if any(same_pixels(frame, other) for other in kept):
                    identical.append(frame)
                else:
                    kept.append(frame)
            clusters[index] = sorted(kept, key=_volume_orders(kept))
    volumes = most_common()
    dropped = copies + identical
    if dropped:
        names = ", ".join(sorted({Path(f.path).name for f in dropped})[:5])
        notes.append(
            f"{len(dropped)} duplicate image(s) (the same image twice, or identical pixel data at one position "
            f"in one volume) were left out: {names}."
        )
    unplaced = []
    for index, cluster in enumerate(clusters):
        if len(cluster) > volumes:
            unplaced.extend(cluster[volumes:])
            clusters[index] = cluster[:volumes]
    return volumes, unplaced


def place_stack(
    frames: list[FrameRecord],
    header: SeriesHeader,
    same_pixels: Callable[[FrameRecord, FrameRecord], bool] | None = None,
) -> StackGeometry:
    """Order, spacing, origin, direction, volumes, warnings and tilt of one stack (the rules of docs/geometry.md).

    Parameters
    ----------
    frames : list of FrameRecord
        The images of one stack (one ImageType, echo, orientation and size).
    header : SeriesHeader
        Their series header (SpacingBetweenSlices, SliceThickness for single slices).
    same_pixels : callable, optional
        ``same_pixels(a, b)`` tells whether two images hold identical pixel data (read on demand, only for
        positions holding more images than the others).

    Returns
    -------
    StackGeometry
        The placement; images that cannot be placed are in ``unplaced``.

    Raises
    ------
    GeometryError
        When the orientation is not two perpendicular unit vectors or the spacing is not positive.
    """
    notes: list[str] = []
    positionless = [f for f in frames if f.position is None]
    if positionless and len(positionless) < len(frames) and frames[0].orientation is not None:
        # the others keep their exact geometry; these go to a stack of their own (placed there by instance)
        placed = place_stack([f for f in frames if f.position is not None], header, same_pixels)
        placed.warnings.append(
            f"{len(positionless)} image(s) have no ImagePositionPatient and could not be placed among the others "
            f"({', '.join(sorted({Path(f.path).name for f in positionless})[:5])})."
        )
        placed.unplaced.extend(positionless)
        return placed
    first = frames[0]
    dy, dx, spacing_words = _pixel_spacing(first, notes)
    if first.orientation is None or positionless:
        ordered = sorted(frames, key=lambda f: (f.instance, f.path, f.frame or 0, f.region or ()))
        dz = header.spacing_between_slices or header.slice_thickness or 1.0
        notes.append(
            "The files give no patient position/orientation: slices are ordered by instance number "
            f"and placed {dz:g} mm apart along an assumed axial direction."
        )
        if dz <= 0:
            raise GeometryError(f"slice spacing {dz} mm is not positive")
        source = f"no patient geometry in the files; instance-number order, {spacing_words}"
        return StackGeometry([ordered], (dz, dy, dx), np.zeros(3), np.eye(3)[:, ::-1].copy(), notes, source)
    row_cos, col_cos, normal = _orientation(first, notes)
    direction = np.stack([normal, col_cos, row_cos], axis=1)
    clusters, projections = _cluster(frames, normal)
    volumes, unplaced = _deduplicate(clusters, same_pixels, notes)
    short = [i for i, c in enumerate(clusters) if len(c) < volumes]
    if short:
        blanks = sum(volumes - len(clusters[i]) for i in short)
        notes.append(
            f"{blanks} image(s) are missing from {len(short)} of {len(clusters)} slice positions in this "
            f"{volumes}-volume stack; blank images fill the last volumes there."
        )
    if unplaced:
        notes.append(
            f"{len(unplaced)} image(s) at positions that already hold {volumes} image(s) could not be placed in "
            "a volume; they form a separate stack."
        )
    source = (
        "slice order and spacing from ImagePositionPatient projected on the slice normal "
        f"(ImageOrientationPatient row x column); {spacing_words}"
    )
    if volumes > 1:
        source += f"; {volumes} volumes, images at one position ordered by {VOLUME_ORDER}"
    origin = clusters[0][0].position.copy()
    columns = [c + [None] * (volumes - len(c)) for c in clusters]
    if len(clusters) == 1:
        dz = header.spacing_between_slices or header.slice_thickness or 1.0
        dz = dz if dz > 0 else 1.0
        source += f"; single slice, thickness {dz:g} mm from the header"
        slots = [[columns[0][v]] for v in range(volumes)]
        return StackGeometry(slots, (dz, dy, dx), origin, direction, notes, source, unplaced=unplaced)
    steps = np.diff(projections)
    step = float(np.median(steps))
    tolerance = max(0.01 * step, 1e-3)
    smallest = float(steps.min())
    if np.all(np.abs(steps - step) > tolerance) and smallest > 0:
        # the median of an even count of steps can fall between two step sizes (3 slices, one missing: 3 and
        # 6 mm steps give 4.5): the smallest step is the slice step when every step is a whole multiple of it
        multiples = np.maximum(np.round(steps / smallest), 1)
        if np.all(np.abs(steps - multiples * smallest) <= max(0.01 * smallest, 1e-3) * multiples):
            step, tolerance = smallest, max(0.01 * smallest, 1e-3)
    counts = [int(round(gap / step)) for gap in steps]
    fill = [
        (c - 1) if c >= 2 and abs(gap - c * step) <= tolerance * c else 0
        for c, gap in zip(counts, steps, strict=True)
    ]
    implausible = sum(fill) > MAX_FILL_FRACTION * len(clusters)
    if implausible:
        notes.append(
            f"Implausible gap: filling the gaps would insert {sum(fill)} blank slices between {len(clusters)} "
            f"images (slice positions span {projections[-1] - projections[0]:.1f} mm); no blank slices were "
            "inserted, so the slices are not at their true positions. Check that every file belongs to this series."
        )
        fill = [0] * len(fill)
    layout: list[int | None] = [0]  # cluster index per slot
    uneven, missing = [], []
    for index, gap in enumerate(steps):
        if fill[index]:
            layout.extend([None] * fill[index])
            missing.append((fill[index], projections[index], projections[index + 1]))
        elif abs(gap - step) > tolerance:
            uneven.append(gap)
        layout.append(index + 1)
    if missing:
        total = sum(m[0] for m in missing)
        where = "; ".join(f"{m[0]} between {m[1]:.2f} and {m[2]:.2f} mm" for m in missing[:3])
        notes.append(
            f"{total} slice(s) are missing ({where}). Blank slices were inserted so every other "
            "slice keeps its true position."
        )
    extent = projections[-1] - projections[0]
    if uneven or implausible:
        dz = float(extent / (len(layout) - 1))
        expected = projections[0] + dz * np.array([i for i, c in enumerate(layout) if c is not None])
        error = float(np.max(np.abs(expected - projections)))
        if uneven and not implausible:
            notes.append(
                f"Slice spacing is uneven (steps from {steps.min():.3f} to {steps.max():.3f} mm). "
                f"The volume uses the mean step {dz:.3f} mm; slices are off their true position by up "
                f"to {error:.3f} mm."
            )
    else:
        dz = step
    slots = [[None if c is None else columns[c][v] for c in layout] for v in range(volumes)]
    # gantry tilt: the step between positions is not parallel to the normal
    step_vector = (clusters[-1][0].position - clusters[0][0].position) / (len(layout) - 1)
    shear = step_vector - (step_vector @ normal) * normal
    sine = np.linalg.norm(shear) / max(np.linalg.norm(step_vector), 1e-12)
    tilt, shear_pixels = 0.0, (0.0, 0.0)
    if sine > _TILT_TOL and not implausible:
        tilt = float(np.degrees(np.arcsin(min(sine, 1.0))))
        shear_pixels = (float(shear @ col_cos / dy), float(shear @ row_cos / dx))
        notes.append(
            f"Gantry tilt of {tilt:.1f} degrees: slices are sheared. They were resampled onto an "
            f"orthogonal grid (linear interpolation), {dz:.3f} mm apart along the slice normal."
        )
        source += "; gantry tilt resampled to an orthogonal grid"
    return StackGeometry(
        slots, (dz, dy, dx), origin, direction, notes, source, tilt, shear_pixels, unplaced, implausible
    )
