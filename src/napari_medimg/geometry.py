"""Volumes with physical geometry.

Conventions used across the package:

* arrays are indexed ``(z, y, x)`` (slice, row, column);
* the world is DICOM patient space, LPS, in millimetres;
* ``spacing`` is ``(dz, dy, dx)`` in mm, ``origin`` is the LPS position of voxel ``(0, 0, 0)``'s centre;
* ``direction`` is a 3x3 matrix whose columns are the LPS unit vectors of the array axes ``z, y, x``.

``Volume.affine`` maps a homogeneous index ``(k, j, i, 1)`` to LPS ``(x, y, z, 1)``.  napari shows world
axes in the order ``(S, P, L)`` (reversed LPS) so that an axial scan with an identity direction is shown
with ``scale=spacing`` and ``translate=origin[::-1]``; :meth:`Volume.napari_geometry` returns those keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Volume", "affine_from_geometry", "geometry_from_affine", "orientation_code"]


def affine_from_geometry(spacing, origin, direction) -> np.ndarray:
    """Return the 4x4 matrix mapping index ``(k, j, i, 1)`` to LPS ``(x, y, z, 1)``."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    affine[:3, 3] = np.asarray(origin, float)
    return affine


def geometry_from_affine(affine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split an index→LPS affine into ``(spacing, origin, direction)``; shear is left in ``direction``."""
    affine = np.asarray(affine, float)
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise ValueError("affine has a zero-length axis")
    return spacing, affine[:3, 3].copy(), linear / spacing[None, :]


def orientation_code(direction) -> str:
    """Three-letter code of the LPS direction each array axis (z, y, x) points to most, e.g. ``'SPL'``."""
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = []
    for column in np.asarray(direction, float).T:
        axis = int(np.argmax(np.abs(column)))
        code.append(letters[axis][0] if column[axis] > 0 else letters[axis][1])
    return "".join(code)


@dataclass
class Volume:
    """An image or label array with its physical geometry and PHI-free metadata."""

    array: Any
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3)[:, ::-1].copy())
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        ndim = self.array.ndim
        if ndim not in (2, 3):
            raise ValueError(f"a Volume holds a 2D or 3D array, got {ndim}D")
        self.spacing = np.asarray(self.spacing, float).reshape(-1)
        self.origin = np.asarray(self.origin, float).reshape(-1)
        self.direction = np.asarray(self.direction, float)
        if self.spacing.shape != (ndim,):
            raise ValueError(f"spacing needs {ndim} values, got {self.spacing.tolist()}")
        if np.any(self.spacing <= 0):
            raise ValueError(f"spacing must be positive, got {self.spacing.tolist()}")
        if self.direction.shape != (3, 3) and ndim == 3:
            raise ValueError("direction must be a 3x3 matrix")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def affine(self) -> np.ndarray:
        """4x4 index ``(k, j, i)`` → LPS ``(x, y, z)`` matrix (3D volumes)."""
        return affine_from_geometry(self.spacing, self.origin, self.direction)

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³ (area of one pixel in mm² for 2D)."""
        return float(np.prod(self.spacing))

    @property
    def is_axis_aligned(self) -> bool:
        """True when the array axes z, y, x point along LPS +S, +P, +L (napari needs no rotation)."""
        return bool(np.allclose(self.direction, np.eye(3)[:, ::-1], atol=1e-6))

    def with_array(self, array, **metadata) -> "Volume":
        """A new Volume with the same geometry around ``array`` (metadata updated with ``metadata``)."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {tuple(array.shape)} differs from the volume's {self.shape}")
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    def index_to_world(self, index) -> np.ndarray:
        """LPS mm of array indices ``(..., 3)`` given as ``(k, j, i)``."""
        index = np.asarray(index, float)
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, world) -> np.ndarray:
        """Fractional ``(k, j, i)`` indices of LPS points ``(..., 3)``."""
        inverse = np.linalg.inv(self.affine)
        world = np.asarray(world, float)
        return world @ inverse[:3, :3].T + inverse[:3, 3]

    def napari_geometry(self) -> dict:
        """Layer keyword arguments placing the array in napari's (S, P, L) world, in mm."""
        if self.ndim == 2:
            return {
                "scale": tuple(self.spacing),
                "translate": tuple(self.origin[: 2]),
                "units": ("mm", "mm"),
                "axis_labels": ("y", "x"),
            }
        reverse = np.eye(3)[::-1]
        kwargs = {
            "scale": tuple(self.spacing),
            "units": ("mm", "mm", "mm"),
            "axis_labels": ("S", "P", "L"),
        }
        if self.is_axis_aligned:
            kwargs["translate"] = tuple(self.origin[::-1])
        else:
            rotation = np.eye(4)
            rotation[:3, :3] = reverse @ self.direction
            rotation[:3, 3] = self.origin[::-1]
            kwargs["affine"] = rotation
        return kwargs
