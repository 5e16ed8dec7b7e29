"""Volumes with physical geometry.

Conventions used across the package:

* arrays are indexed ``(z, y, x)`` (slice, row, column);
* the world is DICOM patient space, LPS, in millimetres;
* ``spacing`` is ``(dz, dy, dx)`` in mm, ``origin`` is the LPS position of voxel ``(0, 0, 0)``'s centre;
* ``direction`` is a 3x3 matrix whose columns are the LPS unit vectors of the array axes ``z, y, x``.

``Volume.affine`` maps a homogeneous index ``(k, j, i, 1)`` to LPS ``(x, y, z, 1)``.  napari shows world
axes in the order ``(S, P, L)`` (reversed LPS) so that an axial scan with an identity direction is shown
with ``scale=spacing`` and ``translate=origin[::-1]``; :meth:`Volume.napari_geometry` returns those keywords.

napari slices only along its world axes: a sagittal or coronal stack must be shown with its axes reordered,
and an oblique stack cannot be resliced by napari.  :meth:`Volume.canonical` reorders and flips the array axes
(a view, no copy) to the closest ``SPL`` orientation without touching a voxel value.  What obliquity remains
can be anything up to 45° (a gantry tilt, an oblique MR); it is measured by :meth:`Volume.display_residual`
and the plugin either resamples such a volume onto the axes of the display frame or makes the display frame
the volume's own (see ``docs/viewing.md``).

The *display frame* is a 3x3 rotation whose columns are the LPS unit vectors of napari's world axes 0, 1, 2
(default :data:`CANONICAL_DIRECTION`: S, P, L).  :func:`world_to_lps` / :func:`lps_to_world` are the one
function pair that converts between napari world coordinates and LPS mm; every widget uses it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "Volume",
    "affine_from_geometry",
    "geometry_from_affine",
    "orientation_code",
    "check_spacing",
    "plane_name",
    "CANONICAL_DIRECTION",
    "DISPLAY_TOLERANCE_MM",
    "world_to_lps",
    "lps_to_world",
    "check_same_grid",
]

#: direction of an array whose axes z, y, x point along LPS +S, +P, +L
CANONICAL_DIRECTION = np.eye(3)[:, ::-1]

#: largest distance (mm) between a voxel's true LPS position and where napari draws it without rotation, below
#: which a volume is shown as it is (no resampling); above it the plugin resamples or changes the display frame
DISPLAY_TOLERANCE_MM = 0.1


def _frame(frame) -> np.ndarray:
    """The 3x3 display frame (napari world axes → LPS unit vectors as columns); default (S, P, L)."""
    if frame is None:
        return CANONICAL_DIRECTION
    frame = np.asarray(frame, float)
    if frame.shape == (4, 4):
        frame = frame[:3, :3]
    if frame.shape != (3, 3) or not np.allclose(frame.T @ frame, np.eye(3), atol=1e-6):
        raise ValueError("a display frame is a 3x3 rotation matrix (orthonormal columns)")
    return frame


def world_to_lps(points, frame=None) -> np.ndarray:
    """LPS mm ``(..., 3)`` of napari world points ``(..., 3)`` (world axis order 0, 1, 2).

    Parameters
    ----------
    points : array_like, shape (..., 3)
        Points in napari's world coordinates (the last three world axes), in mm.
    frame : array_like, shape (3, 3), optional
        Display frame: columns are the LPS unit vectors of world axes 0, 1, 2.  Default
        :data:`CANONICAL_DIRECTION` (world = (S, P, L)).

    Returns
    -------
    numpy.ndarray
        The same points as LPS ``(x, y, z)`` mm.

    Examples
    --------
    >>> world_to_lps([30.0, 40.4, 45.4]).tolist()
    [45.4, 40.4, 30.0]
    """
    return np.asarray(points, float) @ _frame(frame).T


def lps_to_world(points, frame=None) -> np.ndarray:
    """napari world coordinates ``(..., 3)`` of LPS points ``(..., 3)``; the inverse of :func:`world_to_lps`.

    Parameters
    ----------
    points : array_like, shape (..., 3)
        LPS ``(x, y, z)`` points in mm.
    frame : array_like, shape (3, 3), optional
        Display frame (see :func:`world_to_lps`).

    Returns
    -------
    numpy.ndarray
        World coordinates in napari's axis order.
    """
    return np.asarray(points, float) @ _frame(frame)


def affine_from_geometry(spacing, origin, direction) -> np.ndarray:
    """Return the 4x4 matrix mapping index ``(k, j, i, 1)`` to LPS ``(x, y, z, 1)``.

    Parameters
    ----------
    spacing : sequence of float
        ``(dz, dy, dx)`` in mm.
    origin : sequence of float
        LPS mm of voxel ``(0, 0, 0)``'s centre.
    direction : array_like, shape (3, 3)
        Columns: LPS unit vectors of the array axes z, y, x.

    Returns
    -------
    numpy.ndarray
        The 4x4 affine.
    """
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    affine[:3, 3] = np.asarray(origin, float)
    return affine


def geometry_from_affine(affine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split an index→LPS affine into ``(spacing, origin, direction)``; shear is left in ``direction``.

    Parameters
    ----------
    affine : array_like, shape (4, 4)
        Index ``(k, j, i)`` → LPS matrix.

    Returns
    -------
    tuple of numpy.ndarray
        ``(spacing, origin, direction)``.

    Raises
    ------
    ValueError
        For an axis of zero length.
    """
    affine = np.asarray(affine, float)
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise ValueError("affine has a zero-length axis")
    return spacing, affine[:3, 3].copy(), linear / spacing[None, :]


def orientation_code(direction) -> str:
    """Three-letter code of the LPS direction each array axis (z, y, x) points to most, e.g. ``'SPL'``.

    Parameters
    ----------
    direction : array_like, shape (3, 3)
        Columns: LPS unit vectors of the array axes z, y, x.

    Returns
    -------
    str
        One of L/R, P/A, S/I per axis.
    """
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = []
    for column in np.asarray(direction, float).T:
        axis = int(np.argmax(np.abs(column)))
        code.append(letters[axis][0] if column[axis] > 0 else letters[axis][1])
    return "".join(code)


#: slices whose normal is within this angle of a patient axis are called by that plane's name alone
PLANE_TOLERANCE_DEGREES = 1.0


def plane_name(direction) -> str:
    """The slice plane in a clinician's words: ``'axial'``, ``'sagittal'``, ``'coronal'``, or e.g.
    ``'axial, oblique 9.2°'`` when the slice normal (the z axis) is off the nearest patient axis.

    Parameters
    ----------
    direction : array_like
        3x3 matrix whose columns are the LPS unit vectors of the array axes z, y, x.

    Returns
    -------
    str
        The plane's name, with the obliquity in degrees when above :data:`PLANE_TOLERANCE_DEGREES`.
    """
    normal = np.asarray(direction, float)[:, 0]
    normal = normal / np.linalg.norm(normal)
    axis = int(np.argmax(np.abs(normal)))
    name = ("sagittal", "coronal", "axial")[axis]
    angle = float(np.degrees(np.arccos(np.clip(abs(normal[axis]), 0.0, 1.0))))
    return name if angle <= PLANE_TOLERANCE_DEGREES else f"{name}, oblique {angle:.1f}°"


def check_spacing(spacing, ndim: int) -> np.ndarray:
    """The one spacing validator: ``spacing`` as ``ndim`` positive finite floats (mm per axis).

    Parameters
    ----------
    spacing : float or sequence of float or None
        mm per axis; one number applies to every axis; None means 1 mm.
    ndim : int
        Number of array axes.

    Returns
    -------
    numpy.ndarray
        Float array of shape ``(ndim,)``.

    Raises
    ------
    ValueError
        When the spacing has the wrong length or a value that is not positive and finite.
    """
    if spacing is None:
        return np.ones(ndim)
    values = np.asarray(spacing, float).reshape(-1)
    if values.size == 1 and ndim != 1:
        values = np.full(ndim, float(values[0]))
    if values.shape != (ndim,):
        raise ValueError(f"spacing needs {ndim} values, got {values.tolist()}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"spacing must be positive and finite, got {values.tolist()}")
    return values


@dataclass
class Volume:
    """An image or label array with its physical geometry and PHI-free metadata.

    Parameters
    ----------
    array : array_like
        numpy or dask array: ``(z, y, x)``, ``(y, x)``, RGB ``(y, x, 3)`` with ``metadata["rgb"]``, or
        ``(volume, z, y, x)``.
    spacing : sequence of float
        mm per array axis (``(dz, dy, dx)``; ``(dy, dx)`` for 2D; an RGB image's channel axis gets 1).
    origin : sequence of float
        3D: LPS mm of voxel ``(0, 0, 0)``'s centre; 2D: ``(y, x)`` mm of pixel ``(0, 0)`` in the image plane
        (a third value, 0, is kept).
    direction : array_like, shape (3, 3)
        Columns: LPS unit vectors of the array axes z, y, x (3D).
    metadata : dict
        PHI-free facts (modality, window, series description …).

    Examples
    --------
    >>> import numpy as np
    >>> Volume(np.zeros((8, 9)), spacing=(0.5, 0.75)).index_to_world([2, 3]).tolist()
    [1.0, 2.25]
    """

    array: Any
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    direction: np.ndarray = field(default_factory=lambda: CANONICAL_DIRECTION.copy())
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        ndim = self.array.ndim
        if ndim not in (2, 3, 4):
            raise ValueError(f"a Volume holds a 2D or 3D array (or 4D, volume axis first), got {ndim}D")
        ndim = min(ndim, 3)  # a 4D array is (volume, z, y, x): the geometry is that of one volume
        self.spacing = np.asarray(self.spacing, float).reshape(-1)
        self.origin = np.asarray(self.origin, float).reshape(-1)
        self.direction = np.asarray(self.direction, float)
        if self.is_rgb:
            if self.array.shape[-1] not in (3, 4):
                raise ValueError(f"an RGB image is (y, x, 3), got shape {tuple(self.array.shape)}")
            if self.spacing.shape == (2,):  # the channel axis gets spacing 1 (one value per array axis)
                self.spacing = np.r_[self.spacing, 1.0]
        if self.spatial_ndim == 2 and self.origin.shape == (2,):
            self.origin = np.r_[self.origin, 0.0]
        if self.origin.shape != (3,):
            raise ValueError(f"origin needs 3 values (2D: y, x and 0), got {self.origin.tolist()}")
        self.spacing = check_spacing(self.spacing, ndim)
        if self.direction.shape != (3, 3) and ndim == 3:
            raise ValueError("direction must be a 3x3 matrix")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        """Number of array axes (an RGB image's channel axis included)."""
        return self.array.ndim

    @property
    def is_rgb(self) -> bool:
        """True for an RGB(A) 2D image: array ``(y, x, 3)`` with ``metadata["rgb"]``."""
        return bool(self.array.ndim == 3 and self.metadata.get("rgb"))

    @property
    def spatial_ndim(self) -> int:
        """2 for a 2D image (grey ``(y, x)`` or RGB ``(y, x, 3)``), 3 for a volume (and a 4D series)."""
        return 2 if self.array.ndim == 2 or self.is_rgb else 3

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The shape of the spatial axes: ``(y, x)`` for 2D and RGB, ``(z, y, x)`` for 3D and 4D."""
        return tuple(self.array.shape[:2] if self.is_rgb else self.array.shape[-self.spatial_ndim :])

    @property
    def spatial_spacing(self) -> np.ndarray:
        """mm per spatial axis (an RGB image's channel axis left out)."""
        return self.spacing[: self.spatial_ndim]

    @property
    def n_volumes(self) -> int:
        """Number of volumes along the leading volume axis of a 4D array (1 for 2D and 3D)."""
        return int(self.array.shape[0]) if self.array.ndim == 4 else 1

    @property
    def affine(self) -> np.ndarray:
        """Homogeneous index → world matrix.

        3D (and 4D): 4x4, index ``(k, j, i)`` → LPS ``(x, y, z)`` mm.  2D (grey or RGB): 3x3, index ``(j, i)``
        → ``(y, x)`` mm in the image plane, ``origin[:2]`` being the plane position of pixel ``(0, 0)`` (the
        world of napari's 2D layers and of 2D seed points).

        Examples
        --------
        >>> Volume(np.zeros((8, 9)), spacing=(0.5, 0.7)).affine.tolist()
        [[0.5, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.0, 1.0]]
        """
        if self.spatial_ndim == 2:
            affine = np.eye(3)
            affine[[0, 1], [0, 1]] = self.spacing[:2]
            affine[:2, 2] = self.origin[:2]
            return affine
        return affine_from_geometry(self.spacing, self.origin, self.direction)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³ (area of one pixel in mm² for 2D and RGB)."""
        return float(np.prod(self.spatial_spacing))

    @property
    def is_axis_aligned(self) -> bool:
        """True when the array axes z, y, x point along LPS +S, +P, +L (napari needs no rotation)."""
        return bool(np.allclose(self.direction, CANONICAL_DIRECTION, atol=1e-6))

    @property
    def obliquity_degrees(self) -> float:
        """Angle between the array axes and the closest LPS axes (0 for axial, sagittal or coronal stacks)."""
        if self.ndim != 3:
            return 0.0
        cosines = np.max(np.abs(self.direction), axis=0)
        return float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))

    def canonical(self, frame=None) -> Volume:
        """The same voxels with array axes reordered and flipped to point along +S, +P, +L.

        No interpolation: the result is a transposed/flipped view of the array (numpy or dask) with the
        geometry updated so that every voxel keeps its world position.

        Parameters
        ----------
        frame : array_like, shape (3, 3), optional
            Display frame whose axes 0, 1, 2 the array axes should follow (default S, P, L).

        Returns
        -------
        Volume
            ``self`` when nothing changes, else a reordered view.
        """
        if self.spatial_ndim != 3:
            return self
        lead = self.ndim - 3  # a 4D volume's leading volume axis stays in place
        relative = _frame(frame).T @ self.direction
        best = max(
            itertools.permutations(range(3)),
            key=lambda order: sum(abs(relative[i, order[i]]) for i in range(3)),
        )
        array, spacing = self.array, self.spacing[list(best)]
        direction = self.direction[:, list(best)].copy()
        relative = relative[:, list(best)]
        origin = self.origin.copy()
        array = array.transpose(tuple(range(lead)) + tuple(b + lead for b in best))
        flips = []
        for axis in range(3):
            if relative[axis, axis] < 0:
                origin = origin + direction[:, axis] * spacing[axis] * (array.shape[axis + lead] - 1)
                direction[:, axis] = -direction[:, axis]
                flips.append(axis)
        if flips:
            index = tuple(slice(None, None, -1) if axis in flips else slice(None) for axis in range(3))
            array = array[(slice(None),) * lead + index]
        if list(best) == [0, 1, 2] and not flips:
            return self
        return replace(
            self,
            array=array,
            spacing=spacing,
            origin=origin,
            direction=direction,
            metadata={**self.metadata, "reoriented_from": orientation_code(self.direction)},
        )

    def with_array(self, array, **metadata) -> Volume:
        """A new Volume with the same geometry around ``array`` (metadata updated with ``metadata``).

        An RGB image's labels or mask (``(y, x)``, the image's spatial shape) get a grey 2D Volume.

        Parameters
        ----------
        array : array_like
            Same shape as this volume's array (or its spatial shape for an RGB image).
        **metadata
            Entries added to (or replacing those of) the metadata.

        Returns
        -------
        Volume
            The new volume (the array is not copied).

        Raises
        ------
        ValueError
            For an array of another shape.
        """
        if self.is_rgb and tuple(array.shape) == self.spatial_shape:
            merged = {**self.metadata, **metadata}
            merged.pop("rgb", None)
            return replace(self, array=array, spacing=self.spacing[:2].copy(), metadata=merged)
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {tuple(array.shape)} differs from the volume's {self.shape}")
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    def index_to_world(self, index) -> np.ndarray:
        """World mm of array indices: LPS ``(x, y, z)`` of ``(k, j, i)`` for 3D, plane ``(y, x)`` of ``(j, i)``
        for 2D.

        Parameters
        ----------
        index : array_like, shape (..., 3) or (..., 2)
            Fractional indices along the spatial axes.

        Returns
        -------
        numpy.ndarray
            World positions, same leading shape.
        """
        n = self.spatial_ndim
        affine = self.affine
        return np.asarray(index, float) @ affine[:n, :n].T + affine[:n, n]

    def world_to_index(self, world) -> np.ndarray:
        """Fractional array indices of world points (LPS ``(..., 3)`` for 3D, plane ``(y, x)`` for 2D).

        Parameters
        ----------
        world : array_like, shape (..., 3) or (..., 2)
            World positions in mm.

        Returns
        -------
        numpy.ndarray
            Fractional indices ``(k, j, i)`` (3D) or ``(j, i)`` (2D).
        """
        n = self.spatial_ndim
        inverse = np.linalg.inv(self.affine)
        return np.asarray(world, float) @ inverse[:n, :n].T + inverse[:n, n]

    def permute_axes(self, order, flips=()) -> Volume:
        """The same voxels with the spatial axes reordered (``order``) then reversed along ``flips``; every
        voxel keeps its world position (the one axis permute/flip helper: no copy, no interpolation).

        Parameters
        ----------
        order : sequence of int
            New order of the spatial axes, e.g. ``(2, 0, 1)``; a 4D volume's leading axis stays first.
        flips : sequence of int, optional
            Axes (after reordering) to reverse.

        Returns
        -------
        Volume
            A view with spacing, origin and direction updated.

        Raises
        ------
        ValueError
            When ``order`` is not a permutation of the spatial axes.
        """
        if self.spatial_ndim != 3:
            raise ValueError("permute_axes reorders the axes of 3D volumes (a 2D image's world is its plane)")
        order = [int(a) for a in order]
        if sorted(order) != [0, 1, 2]:
            raise ValueError(f"order must be a permutation of 0, 1, 2, got {order}")
        lead = self.ndim - 3
        array = self.array.transpose(tuple(range(lead)) + tuple(a + lead for a in order))
        spacing, direction, origin = self.spacing[order], self.direction[:, order].copy(), self.origin.copy()
        index = [slice(None)] * self.ndim
        for axis in sorted({int(a) for a in flips}):
            if not 0 <= axis < 3:
                raise ValueError(f"flip axis {axis} is not a spatial axis")
            origin = origin + direction[:, axis] * spacing[axis] * (array.shape[axis + lead] - 1)
            direction[:, axis] = -direction[:, axis]
            index[axis + lead] = slice(None, None, -1)
        return replace(self, array=array[tuple(index)], spacing=spacing, origin=origin, direction=direction)

    def display_residual(self, frame=None) -> tuple[float, float]:
        """How far napari would draw voxels from their true place if shown in ``frame`` without rotation.

        Parameters
        ----------
        frame : array_like, shape (3, 3), optional
            Display frame (default S, P, L).

        Returns
        -------
        angle_deg : float
            Rotation angle between the volume's axes (after :meth:`canonical`) and the frame's axes.
        displacement_mm : float
            Largest distance between a corner voxel's true LPS position and its drawn position.
        """
        if self.ndim != 3:
            return 0.0, 0.0
        volume = self.canonical(frame)
        relative = _frame(frame).T @ volume.direction
        cosine = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
        corners = np.array(list(itertools.product(*[(0, n - 1) for n in volume.shape])), float)
        offsets = corners * volume.spacing
        displacement = np.linalg.norm(offsets @ (relative - np.eye(3)).T, axis=1).max()
        return float(np.degrees(np.arccos(cosine))), float(displacement)

    def napari_geometry(self, frame=None) -> dict:
        """Layer keyword arguments placing the array in napari's world, in mm.

        Parameters
        ----------
        frame : array_like, shape (3, 3), optional
            Display frame (default S, P, L: napari world = reversed LPS).  A volume whose axes follow the
            frame (see :meth:`canonical`) gets ``scale`` and ``translate``; any rotation left within it is not
            drawn (:meth:`display_residual` says how much that is).

        Returns
        -------
        dict
            ``scale``, ``translate`` or ``affine``, ``units`` and ``axis_labels``.
        """
        if self.spatial_ndim == 2:
            return {
                "scale": tuple(self.spacing[:2]),
                "translate": tuple(self.origin[:2]),
                "units": ("mm", "mm"),
                "axis_labels": ("y", "x"),
            }
        inverse = _frame(frame).T
        kwargs = {
            "scale": tuple(self.spacing),
            "units": ("mm", "mm", "mm"),
            "axis_labels": ("S", "P", "L"),
        }
        if self.is_axis_aligned or _is_canonical_order(inverse @ self.direction):
            # napari cannot reslice an oblique stack: a rotation left after `canonical(frame)` is not drawn
            # (the plugin resamples or changes the frame when it is larger than DISPLAY_TOLERANCE_MM)
            kwargs["translate"] = tuple(inverse @ self.origin)
        else:
            rotation = np.eye(4)
            rotation[:3, :3] = inverse @ self.direction
            rotation[:3, 3] = inverse @ self.origin
            kwargs["affine"] = rotation
        if self.ndim == 4:  # the leading volume axis: one step per volume, shown as napari's volume slider
            kwargs["scale"] = (1.0, *kwargs["scale"])
            kwargs["units"] = ("", *kwargs["units"])
            kwargs["axis_labels"] = ("volume", *kwargs["axis_labels"])
            if "translate" in kwargs:
                kwargs["translate"] = (0.0, *kwargs["translate"])
            else:
                affine = np.eye(5)
                affine[1:, 1:] = kwargs["affine"]
                kwargs["affine"] = affine
        return kwargs


def _is_canonical_order(relative) -> bool:
    """True when array axes z, y, x point mostly along display axes 0, 1, 2 (what ``canonical`` gives);
    ``relative`` is the direction expressed in the display frame."""
    relative = np.asarray(relative, float)
    return all(relative[axis, axis] > 0 and np.argmax(np.abs(relative[:, axis])) == axis for axis in range(3))


def check_same_grid(a: Volume, b: Volume, *, tolerance_mm: float = 0.01, names=("A", "B")) -> None:
    """Refuse two volumes that do not share one voxel grid, saying what differs.

    Shape must be equal; spacing, origin and direction together may move no corner voxel of the grid by more
    than ``tolerance_mm`` (so a float32 round trip passes, a 50 mm shift or a mirrored axis does not).

    Parameters
    ----------
    a, b : Volume
        The two volumes (a leading volume axis of 4D arrays is ignored).
    tolerance_mm : float, optional
        Largest allowed distance between the LPS positions of corresponding corner voxels.
    names : tuple of str, optional
        How the message names ``a`` and ``b`` (e.g. ``("IMAGE", "LABELS")``).

    Raises
    ------
    ValueError
        Naming each of shape, spacing, origin and direction that differs, with both values.

    Example
    -------
    >>> check_same_grid(image, labels, names=("IMAGE", "LABELS"))  # doctest: +SKIP
    """
    name_a, name_b = names
    shape_a = a.shape[1:] if a.ndim == 4 else a.shape
    shape_b = b.shape[1:] if b.ndim == 4 else b.shape
    if tuple(shape_a) != tuple(shape_b):
        raise ValueError(
            f"{name_b} has shape {tuple(shape_b)} and {name_a} {tuple(shape_a)}; they must share one voxel "
            "grid (resample one onto the other first)"
        )
    spacing_a, spacing_b = np.asarray(a.spacing, float), np.asarray(b.spacing, float)
    if len(shape_a) != 3:
        if not np.allclose(spacing_a, spacing_b, atol=tolerance_mm / max(max(shape_a), 1)):
            raise ValueError(
                f"{name_b} spacing {spacing_b.tolist()} mm differs from {name_a} {spacing_a.tolist()} mm"
            )
        return
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape_a])), float)
    distance = float(np.max(np.linalg.norm(a.index_to_world(corners) - b.index_to_world(corners), axis=1)))
    if not np.isfinite(distance):
        raise ValueError(f"{name_a} or {name_b} has a non-finite geometry (spacing, origin or direction)")
    if distance <= tolerance_mm:
        return
    differences = []
    if not np.allclose(spacing_a, spacing_b, atol=tolerance_mm / max(max(shape_a), 1)):
        differences.append(f"spacing {spacing_b.round(6).tolist()} vs {spacing_a.round(6).tolist()} mm")
    shift = float(np.linalg.norm(np.asarray(b.origin, float) - np.asarray(a.origin, float)))
    if shift > tolerance_mm:
        differences.append(
            f"origin {shift:.3g} mm apart ({np.round(b.origin, 3).tolist()} vs {np.round(a.origin, 3).tolist()})"
        )
    cosines = np.clip(np.sum(np.asarray(a.direction, float) * np.asarray(b.direction, float), axis=0), -1, 1)
    angles = np.degrees(np.arccos(cosines))
    turned = [f"axis {'zyx'[i]} by {angles[i]:.3g}°" for i in range(3) if angles[i] > 1e-3]
    if turned:
        differences.append(
            "direction: " + ", ".join(turned) + (" (mirrored)" if np.any(cosines < -0.999) else "")
        )
    raise ValueError(
        f"{name_b} does not lie on {name_a}'s voxel grid: {'; '.join(differences) or 'geometry'} (corner voxels up "
        f"to {distance:.3g} mm apart, tolerance {tolerance_mm:g} mm); resample one onto the other first"
    )
