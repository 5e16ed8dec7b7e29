"""Diffusion b-values and gradient directions of classic GE and Philips images, in patient LPS.

The standard attributes come first (DiffusionBValue (0018,9087) and DiffusionGradientOrientation (0018,9089),
top level or in the MR Diffusion Sequence of enhanced files; read in :mod:`.header`).  When a classic image
has none, the vendors' private elements are read:

**GE**: direction (0019,10BB), (0019,10BC), (0019,10BD) of "GEMS_ACQU_01"; b-value: first value of
"GEMS_PARM_01" (0043,1039).  GE reports the direction in the MR logical frame of the acquisition (frequency,
phase, slice), not in patient coordinates (GE's documentation as quoted in dcm2niix's ``GE/README.md``).  The
signs follow dcm2niix's ``geCorrectBvecs`` (itself from dicm2nii, validated by dcm2niix on axial, column
phase-encoded data): with ``(x, y, z)`` the three values, ``r``/``c`` the row/column directions of
ImageOrientationPatient and ``n = r x c``, the LPS direction for column (COL) phase encoding is ``-x r - y c
+ z n`` for axial slices (``n`` closest to the patient z axis), ``x r + y c - z n`` for sagittal slices
(``n`` closest to x) and ``-x r + y c + z n`` for coronal slices (``n`` closest to y).  For row (ROW) phase
encoding ``(x, y)`` is first replaced by ``(y, -x)``, and by ``(-y, x)`` for coronal slices (what dcm2niix
v1.0.20260724 writes, checked against the binary; dcm2niix calls ROW "untested").  A direction shorter than 1
(0.03 < ``|g|`` < 0.97) scales the b-value by ``|g|^2`` (dcm2niix issue 163).

**GE and Canon** (:data:`LOGICAL_FRAME_MAKERS`): the standard DiffusionGradientOrientation of a classic image is
in the same logical frame, and converted by the same rule (what dcm2niix v1.0.20260724 writes for both makers;
other makers' standard directions, Toshiba's included, are patient coordinates).

**Philips**: direction (2005,10B0), (2005,10B1), (2005,10B2) of "Philips MR Imaging DD 001"; b-value
(2001,1003) of "Philips Imaging DD 001".  The three values are the RL, AP and FH components in patient
coordinates: the +x (towards the patient's left), +y (posterior) and +z (head) LPS components, used as they
are (dcm2niix passes them unchanged to its scanner-to-image rotation, as it does the standard attribute).

A b-value of 0, or a zero direction (a trace/isotropic image), gives a zero vector.
"""

from __future__ import annotations

import struct

import numpy as np

from .records import FrameRecord, first

__all__ = [
    "ge_gradient_lps",
    "ge_scaled_b_value",
    "philips_gradient_lps",
    "unit_direction",
    "vendor_diffusion",
    "LOGICAL_FRAME_MAKERS",
]

#: fast header keyword -> (group, element offset, private creator) of the private values read here
PRIVATE_DIFFUSION = {
    "GEGradientX": (0x0019, 0xBB, "GEMS_ACQU_01"),
    "GEGradientY": (0x0019, 0xBC, "GEMS_ACQU_01"),
    "GEGradientZ": (0x0019, 0xBD, "GEMS_ACQU_01"),
    "PhilipsBValue": (0x2001, 0x03, "Philips Imaging DD 001"),
    "PhilipsGradientRL": (0x2005, 0xB0, "Philips MR Imaging DD 001"),
    "PhilipsGradientAP": (0x2005, 0xB1, "Philips MR Imaging DD 001"),
    "PhilipsGradientFH": (0x2005, 0xB2, "Philips MR Imaging DD 001"),
}
#: makers (first two letters of Manufacturer) whose gradient directions, the standard DiffusionGradientOrientation
#: included, are in the logical frame of the acquisition: GE and Canon (dcm2niix converts both with its GE rule)
LOGICAL_FRAME_MAKERS = ("GE", "CA")
#: coefficients of (x r, y c, z n) by the axis the slice normal is closest to (patient x, y, z)
_GE_SIGNS = {0: (1.0, 1.0, -1.0), 1: (-1.0, 1.0, 1.0), 2: (-1.0, -1.0, 1.0)}


def ge_gradient_lps(gradient, orientation, phase_direction: str = "COL") -> tuple[np.ndarray, float] | None:
    """The LPS unit direction of GE's logical-frame gradient (see the module docstring) and its length.

    Parameters
    ----------
    gradient : sequence of 3 float
        (0019,10BB), (0019,10BC), (0019,10BD).
    orientation : sequence of 6 float
        ImageOrientationPatient.
    phase_direction : {"COL", "ROW"}
        InPlanePhaseEncodingDirection (0018,1312).

    Returns
    -------
    tuple or None
        ``(unit LPS vector, length of the stored vector)``; a zero vector and 0.0 for a zero gradient; None
        when the values or the orientation are unusable.

    Examples
    --------
    >>> ge_gradient_lps([1, 0, 0], [1, 0, 0, 0, 1, 0])[0].tolist()  # axial: -x along the rows
    [-1.0, 0.0, 0.0]
    """
    g = np.asarray(gradient, float)
    o = np.asarray(orientation, float)
    if g.shape != (3,) or o.shape != (6,) or not (np.all(np.isfinite(g)) and np.all(np.isfinite(o))):
        return None
    length = float(np.linalg.norm(g))
    if length <= 1e-6:
        return np.zeros(3), 0.0
    row, col = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
    normal = np.cross(row, col)
    x, y, z = g / length
    axis = int(np.argmax(np.abs(normal)))
    if phase_direction == "ROW":  # dcm2niix 1.0.2026: coronal slices take the opposite in-plane signs
        x, y = (-y, x) if axis == 1 else (y, -x)
    sx, sy, sz = _GE_SIGNS[axis]
    vector = sx * x * row + sy * y * col + sz * z * normal
    return vector / np.linalg.norm(vector), length


def ge_scaled_b_value(b_value: float, length: float) -> tuple[float, float]:
    """GE's b-value of a gradient shorter than 1, and the length its b-vector keeps (dcm2niix's rule).

    For ``0.03 < length < 0.97`` the b-value is ``b length^2`` rounded to a multiple of 5 (at least 5), and
    the vector keeps the length ``length sqrt(b / rounded)`` (about 1), so that the written b-value times the
    squared vector length stays ``b length^2`` (dcm2niix issues 163 and 245).  Otherwise the b-value and the
    stored length are kept as they are (dcm2niix does not normalise GE's vectors): ``(b, length)``.

    Examples
    --------
    >>> ge_scaled_b_value(1000.0, 0.55)[0]  # 302.5 -> 305
    305.0
    """
    if not (b_value > 0 and 0.03 < length < 0.97):
        return b_value, length
    scaled = b_value * length**2
    rounded = 5.0 if scaled < 5 else float(int((scaled + 2.5) / 5) * 5)
    return rounded, length * float(np.sqrt(b_value / rounded))


def unit_direction(vector: np.ndarray | None) -> np.ndarray | None:
    """A gradient direction scaled to unit length (zero stays zero), as dcm2niix normalises the b-vectors."""
    if vector is None:
        return None
    length = float(np.linalg.norm(vector))
    return np.asarray(vector, float) / length if length > 1e-6 else np.zeros(3)


def philips_gradient_lps(gradient) -> np.ndarray | None:
    """The LPS unit direction of Philips' (RL, AP, FH) gradient (a zero vector for a zero one).

    Parameters
    ----------
    gradient : sequence of 3 float
        (2005,10B0), (2005,10B1), (2005,10B2).

    Returns
    -------
    ndarray or None
        The direction, None when the values are not 3 finite numbers.
    """
    g = np.asarray(gradient, float)
    if g.shape != (3,) or not np.all(np.isfinite(g)):
        return None
    return unit_direction(g)


def _private(dataset, keyword: str):
    """A private value by its fast-header keyword (FastHeader) or its creator block (pydicom Dataset)."""
    if isinstance(dataset, dict):
        return dataset.get(keyword)
    group, offset, creator = PRIVATE_DIFFUSION[keyword]
    try:
        return dataset.get_private_item(group, offset, creator).value
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _floats(dataset, keywords) -> list[float] | None:
    values = []
    for keyword in keywords:
        value = first(_private(dataset, keyword))
        if value is None:  # absent (most images): no exception raised
            return None
        if isinstance(value, bytes):  # an element of VR UN: FL as 4 little-endian bytes, DS as text
            value = (
                struct.unpack("<f", value)[0] if keyword.startswith("Philips") and len(value) == 4 else value
            )
            value = value.decode("latin-1").strip(" \x00") if isinstance(value, bytes) else value
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            return None
    return values


def vendor_diffusion(dataset, frame: FrameRecord) -> None:
    """Set ``frame.b_value``/``frame.b_vector`` from GE or Philips private elements when the standard ones
    are absent (see the module docstring).

    Parameters
    ----------
    dataset : pydicom.Dataset or FastHeader
        Header of one classic image.
    frame : FrameRecord
        Its record (its ``b_value`` already holds the standard or GE (0043,1039) value, if any).
    """
    if frame.b_value is None:
        philips_b = _floats(dataset, ("PhilipsBValue",))
        if philips_b is not None and np.isfinite(philips_b[0]) and philips_b[0] >= 0:
            frame.b_value = philips_b[0]
    maker = str(dataset.get("Manufacturer", "") or "").strip().upper()[:2]
    if frame.b_vector is not None and maker not in LOGICAL_FRAME_MAKERS:
        return
    ge = _floats(dataset, ("GEGradientX", "GEGradientY", "GEGradientZ"))
    private = ge is not None
    if frame.b_vector is not None and ge is None:  # GE's or Canon's standard attribute: logical frame too
        ge = [float(v) for v in dataset.get("DiffusionGradientOrientation")]
    if ge is not None and frame.orientation is not None:
        direction = frame.acquisition.get("InPlanePhaseEncodingDirectionDICOM", "COL")
        result = ge_gradient_lps(ge, frame.orientation, direction)
        if result is not None:
            frame.b_vector, length = result
            if frame.b_value and length == 0.0 and (private or maker == "GE"):
                frame.b_value = 0.0  # GE: no gradient, no diffusion weighting (dcm2niix writes b = 0)
            elif frame.b_value:  # GE scales b by |g|^2 (dcm2niix issues 163, 245)
                frame.b_value, kept = ge_scaled_b_value(frame.b_value, length)
                frame.b_vector = frame.b_vector * kept
        return
    philips = _floats(dataset, ("PhilipsGradientRL", "PhilipsGradientAP", "PhilipsGradientFH"))
    if philips is not None:
        frame.b_vector = philips_gradient_lps(philips)
