"""Sample data made without any file from outside: a CT-like phantom with ground truth, and pydicom's test files.

The phantom is a seeded, deterministic thorax/abdomen-like CT volume in Hounsfield units with anisotropic
spacing.  Every lesion is an ellipsoid of known centre, radii, HU and analytic volume, so segmentation and
measurement code can be checked against exact numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .geometry import Volume

__all__ = ["Phantom", "make_ct_phantom", "TISSUE_LABELS", "pydicom_test_file"]

#: label values of the tissue ground truth
TISSUE_LABELS = {"soft tissue": 1, "lung": 2, "bone": 3, "liver": 4, "lesion": 5}

AIR_HU = -1000.0
SOFT_TISSUE_HU = 40.0
LUNG_HU = -800.0
BONE_HU = 700.0
LIVER_HU = 60.0


@dataclass
class Phantom:
    """The phantom image with its ground truth."""

    image: Volume
    tissues: Volume
    lesions: Volume
    lesion_table: pd.DataFrame


@dataclass(frozen=True)
class _Ellipsoid:
    centre: tuple[float, float, float]  # (depth below the top slice, y, x) mm in the design frame
    radii: tuple[float, float, float]  # (z, y, x) mm
    hu: float


# (name, ellipsoid) — lung nodules are solid (soft-tissue density) in air-filled lung; liver lesions are
# hypodense cysts/metastases; one hyperdense enhancing lesion sits in the soft tissue of the abdomen wall.
_LESIONS = (
    ("lung nodule right upper", _Ellipsoid((60.0, 95.0, 60.0), (9.0, 8.0, 8.0), 35.0)),
    ("lung nodule left", _Ellipsoid((45.0, 95.0, 125.0), (7.5, 7.0, 7.0), 45.0)),
    ("lung nodule right lower", _Ellipsoid((90.0, 75.0, 55.0), (10.0, 9.0, 10.0), 30.0)),
    ("liver cyst", _Ellipsoid((145.0, 90.0, 55.0), (10.0, 10.0, 10.0), 5.0)),
    ("liver metastasis", _Ellipsoid((140.0, 100.0, 80.0), (8.0, 9.0, 9.0), 0.0)),
    ("enhancing lesion", _Ellipsoid((110.0, 130.0, 135.0), (7.5, 6.5, 6.5), 160.0)),
)


def _coverage(distance_mm: np.ndarray, blur_mm: float) -> np.ndarray:
    """Partial-volume fraction of a voxel whose centre is ``distance_mm`` inside (negative) a surface."""
    return np.clip(0.5 - distance_mm / blur_mm, 0.0, 1.0)


def _ellipsoid_distance(grid, centre, radii):
    """Approximate signed distance (mm, negative inside) of grid points to an ellipsoid surface."""
    z, y, x = grid
    r = np.sqrt(
        ((z - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((x - centre[2]) / radii[2]) ** 2
    )
    return (r - 1.0) * min(radii)


def make_ct_phantom(
    shape: tuple[int, int, int] = (64, 256, 256),
    spacing: tuple[float, float, float] = (2.5, 0.7, 0.7),
    noise_hu: float = 12.0,
    seed: int = 0,
) -> Phantom:
    """Generate the CT-like phantom.

    The default grid is 64 × 256 × 256 voxels of 2.5 × 0.7 × 0.7 mm (160 × 179 × 179 mm).  Tissues:
    air -1000 HU, soft tissue 40 HU, lungs -800 HU, liver 60 HU, spine and ribs-like ring 700 HU, plus the
    lesions of :data:`_LESIONS`.  The image has partial-volume edges and spatially correlated Gaussian noise
    of standard deviation ``noise_hu``; the same seed always gives the same volume.

    The anatomy is laid out in a design frame whose first axis is the depth below the top slice (head to
    foot); the array's z axis runs from foot to head (+S, as in a DICOM axial series sorted by position),
    so the painted arrays are flipped along z: the lungs lie above the liver in patient space.  The lesion
    table's ``centre_x_mm``, ``centre_y_mm`` and ``centre_z_mm`` are LPS world coordinates (what napari's
    cursor shows as L, P, S).

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)`` voxels.
    spacing : tuple of float
        ``(dz, dy, dx)`` in mm.
    noise_hu : float
        Standard deviation of the correlated noise in HU.
    seed : int
        Seed of the noise.

    Returns
    -------
    Phantom
        Image (HU, int16), tissue labels, lesion labels and the lesion table.
    """
    spacing_arr = np.asarray(spacing, float)
    extent = np.asarray(shape) * spacing_arr
    scale = extent / np.array([160.0, 179.2, 179.2])  # lesion layout was designed for the default extent
    grid = np.meshgrid(
        *[(np.arange(n) + 0.0) * s for n, s in zip(shape, spacing_arr, strict=False)],
        indexing="ij",
        sparse=True,
    )
    blur = float(np.mean(spacing_arr))
    cz, cy, cx = extent / 2

    def ellipsoid(centre, radii):
        return _ellipsoid_distance(grid, centre, radii)

    body_d = ellipsoid((cz, cy, cx), (extent[0] * 10, extent[1] * 0.40, extent[2] * 0.46))
    lung_r_d = ellipsoid(
        (cz - 0.12 * extent[0], cy - 0.06 * extent[1], cx - 0.2 * extent[2]),
        (extent[0] * 0.40, extent[1] * 0.22, extent[2] * 0.15),
    )
    lung_l_d = ellipsoid(
        (cz - 0.12 * extent[0], cy - 0.06 * extent[1], cx + 0.2 * extent[2]),
        (extent[0] * 0.40, extent[1] * 0.22, extent[2] * 0.15),
    )
    liver_d = ellipsoid(
        (cz + 0.32 * extent[0], cy - 0.02 * extent[1], cx - 0.12 * extent[2]),
        (extent[0] * 0.30, extent[1] * 0.25, extent[2] * 0.28),
    )
    spine_d = ellipsoid((cz, cy + 0.28 * extent[1], cx), (extent[0] * 10, extent[1] * 0.06, extent[2] * 0.06))

    image = np.full(shape, AIR_HU, np.float32)
    tissues = np.zeros(shape, np.uint8)

    def paint(distance, hu, label_value):
        nonlocal image
        fraction = _coverage(distance, blur).astype(np.float32)
        image += fraction * (np.float32(hu) - image)
        tissues[distance <= 0] = label_value

    paint(body_d, SOFT_TISSUE_HU, TISSUE_LABELS["soft tissue"])
    paint(np.maximum(liver_d, body_d), LIVER_HU, TISSUE_LABELS["liver"])
    paint(lung_r_d, LUNG_HU, TISSUE_LABELS["lung"])
    paint(lung_l_d, LUNG_HU, TISSUE_LABELS["lung"])
    paint(spine_d, BONE_HU, TISSUE_LABELS["bone"])

    lesions = np.zeros(shape, np.uint8)
    rows = []
    for value, (name, lesion) in enumerate(_LESIONS, start=1):
        centre = tuple(np.asarray(lesion.centre) * scale)
        radii = tuple(np.asarray(lesion.radii) * scale)
        distance = ellipsoid(centre, radii)
        paint(distance, lesion.hu, TISSUE_LABELS["lesion"])
        lesions[distance <= 0] = value
        voxels = int(np.count_nonzero(distance <= 0))
        rows.append(
            {
                "label": value,
                "name": name,
                "centre_z_mm": centre[0],
                "centre_y_mm": centre[1],
                "centre_x_mm": centre[2],
                "radius_z_mm": radii[0],
                "radius_y_mm": radii[1],
                "radius_x_mm": radii[2],
                "hu": lesion.hu,
                "volume_mm3": 4.0 / 3.0 * np.pi * float(np.prod(radii)),
                "voxel_volume_mm3": voxels * float(np.prod(spacing_arr)),
            }
        )

    # design depth runs head to foot; the array's z axis runs foot to head (+S)
    image, tissues, lesions = (np.ascontiguousarray(a[::-1]) for a in (image, tissues, lesions))
    direction = np.eye(3)[:, ::-1]
    origin = np.array([-extent[2] / 2, -extent[1] / 2, -extent[0] / 2])  # LPS of voxel (0, 0, 0), centred
    top_z_mm = (shape[0] - 1) * spacing_arr[0]
    for row in rows:  # design frame → LPS world (the cursor's L, P, S)
        row["centre_x_mm"] = origin[0] + row["centre_x_mm"]
        row["centre_y_mm"] = origin[1] + row["centre_y_mm"]
        row["centre_z_mm"] = origin[2] + top_z_mm - row["centre_z_mm"]

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=(0.3, 0.8, 0.8))
    noise *= np.float32(noise_hu / max(float(noise.std()), 1e-6))
    image += noise
    hu = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    common = {"modality": "CT", "source": "napari-medimg CT phantom", "seed": seed}
    return Phantom(
        image=Volume(
            hu,
            spacing_arr,
            origin,
            direction,
            {
                **common,
                "series_description": "CT phantom",
                "units": "HU",
                "window_center": 40.0,
                "window_width": 400.0,
            },
        ),
        tissues=Volume(
            tissues,
            spacing_arr,
            origin,
            direction,
            {
                **common,
                "series_description": "phantom tissues",
                "label_names": {v: k for k, v in TISSUE_LABELS.items()},
            },
        ),
        lesions=Volume(
            lesions,
            spacing_arr,
            origin,
            direction,
            {
                **common,
                "series_description": "phantom lesions",
                "label_names": {row["label"]: row["name"] for row in rows},
            },
        ),
        lesion_table=pd.DataFrame(rows),
    )


def pydicom_test_file(name: str) -> str:
    """Path of one of pydicom's bundled test files, e.g. ``'CT_small.dcm'`` or ``'MR_small.dcm'``."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"pydicom does not ship a test file named {name!r}")
    return str(path)
