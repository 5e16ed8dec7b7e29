"""Raster images (PNG, TIFF incl. LZW/Deflate, GIF, JPEG, BMP) as :class:`~napari_medimg.geometry.Volume`.

Conventions

* grey images → ``(y, x)``; RGB or RGBA → ``(y, x, 3)`` (alpha dropped) with ``metadata["rgb"] = True``;
  a multi-page grey TIFF stack → ``(z, y, x)``;
* pixel spacing in mm comes from the file's resolution (PNG ``pHYs``, TIFF ``X/YResolution`` with an inch or
  centimetre unit, JPEG JFIF density); without one it is 1.0 and ``metadata["spacing_assumed"] = True``;
* for RGB images the spacing has a third value, 1.0, for the channel axis (a Volume holds one spacing per
  array axis); use ``volume.spacing[:2]`` for the pixel size.

TIFF files are decoded with tifffile (imagecodecs provides LZW, Deflate, JPEG, ...); the other formats with
Pillow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..geometry import Volume, check_spacing
from .atomic import atomic_path
from .errors import CorruptFileError, UnsupportedFileError

__all__ = ["RASTER_SUFFIXES", "is_raster_path", "read_image", "write_labels_png", "write_labels_tiff"]

#: file name endings read by :func:`read_image`
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")

_MM_PER_UNIT = {"inch": 25.4, "cm": 10.0}


def is_raster_path(path: str | os.PathLike) -> bool:
    """True when ``path`` names a file :func:`read_image` reads (by its suffix).

    Parameters
    ----------
    path : str or os.PathLike
        A file name.

    Returns
    -------
    bool
        Whether the suffix is one of :data:`RASTER_SUFFIXES` (case-insensitive).
    """
    return Path(os.fspath(path)).suffix.lower() in RASTER_SUFFIXES


def _spacing_from_resolution(x_per_unit, y_per_unit, unit: str | None) -> tuple[float, float] | None:
    """(dy, dx) in mm from pixels per ``unit``; None when the file gives no usable physical resolution."""
    if unit not in _MM_PER_UNIT:
        return None
    try:
        x_per_unit, y_per_unit = float(x_per_unit), float(y_per_unit)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (np.isfinite(x_per_unit) and np.isfinite(y_per_unit)) or x_per_unit <= 0 or y_per_unit <= 0:
        return None
    return _MM_PER_UNIT[unit] / y_per_unit, _MM_PER_UNIT[unit] / x_per_unit


def _tiff_resolution(page) -> tuple[float, float] | None:
    """(dy, dx) in mm from a tifffile page's resolution tags."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None

    def ratio(value):
        numerator, denominator = value
        return numerator / denominator if denominator else 0.0

    unit_tag = tags.get("ResolutionUnit")
    unit = {2: "inch", 3: "cm"}.get(int(unit_tag.value) if unit_tag is not None else 2)
    return _spacing_from_resolution(ratio(tags["XResolution"].value), ratio(tags["YResolution"].value), unit)


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, bool]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            spacing = _tiff_resolution(page)
            array = tiff.asarray()
            photometric = str(getattr(page.photometric, "name", page.photometric))
            extra = len(page.extrasamples) if page.extrasamples else 0
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError, KeyError) as error:
        raise CorruptFileError(f"{path.name!r} is not a readable TIFF file: {error}") from error
    rgb = photometric in ("RGB", "YCBCR") or (array.ndim == 3 and array.shape[-1] in (3, 4) and extra > 0)
    if rgb and array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # separate colour planes
    if photometric == "PALETTE":
        raise UnsupportedFileError(f"{path.name!r}: palette TIFF images are not supported; save it as RGB")
    if photometric == "MINISWHITE":
        array = np.iinfo(array.dtype).max - array if array.dtype.kind in "ui" else array.max() - array
    return array, spacing, rgb


def _read_pillow(path: Path, palette_indices: bool) -> tuple[np.ndarray, tuple[float, float] | None, bool]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            frames = int(getattr(image, "n_frames", 1) or 1)
            # an animated GIF/PNG: its first frame alone would drop the others unsaid (a camera's
            # multi-picture JPEG holds the photograph first and previews after it: the first is the image)
            if frames > 1 and image.format in ("GIF", "PNG"):
                raise UnsupportedFileError(
                    f"{path.name!r} holds {frames} frames (an animation); save them as a multi-page TIFF "
                    "(read as a stack) or one image per frame"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            dpi = image.info.get("dpi")
            mode = image.mode
            if mode == "P" and palette_indices:
                array = np.asarray(image)
            elif mode in ("P", "PA"):
                array = np.asarray(image.convert("RGBA" if "transparency" in image.info else "RGB"))
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                array = np.asarray(image.convert("RGB"))
            elif mode == "1":
                array = np.asarray(image.convert("L"))
            else:
                array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise CorruptFileError(f"{path.name!r} is not a readable image: {error}") from error
    if mode == "LA" or (
        mode in ("P", "PA") and not palette_indices and array.ndim == 3 and array.shape[-1] == 2
    ):
        array = array[..., 0]
    rgb = array.ndim == 3
    if rgb and array.shape[-1] in (3, 4):
        colours = array[..., :3]
        if (
            mode in ("P", "PA")
            and np.array_equal(colours[..., 0], colours[..., 1])
            and np.array_equal(colours[..., 0], colours[..., 2])
        ):
            array, rgb = colours[..., 0], False  # a grey palette (GIF masks, grey PNGs saved with a palette)
    spacing = None
    if dpi is not None and len(dpi) == 2:
        # Pillow reports a density without unit as dpi too only when the unit is inch/cm (converted to dpi)
        spacing = _spacing_from_resolution(dpi[0], dpi[1], "inch")
    return array, spacing, rgb


def read_image(path: str | os.PathLike, *, palette_indices: bool = False) -> Volume:
    """Read a PNG, TIFF (including LZW- or Deflate-compressed), GIF, JPEG or BMP image.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    palette_indices : bool, optional
        For palette (indexed-colour) PNG/GIF images, return the palette indices (a label image saved with a
        colour table) instead of the colours they stand for.

    Returns
    -------
    Volume
        ``(y, x)`` for grey images, ``(y, x, 3)`` with ``metadata["rgb"] = True`` for colour images (alpha
        dropped), ``(z, y, x)`` for a multi-page grey TIFF.  ``spacing`` in mm from the file's resolution, or
        1.0 with ``metadata["spacing_assumed"] = True`` when the file has none.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    UnsupportedFileError
        When the suffix is not a raster format, or the image layout is not supported.
    CorruptFileError
        When the file cannot be decoded.

    Example
    -------
    >>> volume = read_image("21_training.tif")  # doctest: +SKIP
    >>> volume.shape, volume.metadata["rgb"]  # doctest: +SKIP
    ((584, 565, 3), True)
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)!r} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        raise UnsupportedFileError(
            f"{path.name!r} is not a raster image ({', '.join(RASTER_SUFFIXES)} are read)"
        )
    if suffix in (".tif", ".tiff"):
        array, spacing_yx, rgb = _read_tiff(path)
    else:
        array, spacing_yx, rgb = _read_pillow(path, palette_indices)
    if rgb:
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise UnsupportedFileError(
                f"{path.name!r}: colour images of shape {array.shape} are not supported"
            )
        array = np.ascontiguousarray(array[..., :3])
    elif array.ndim == 3 and array.shape[-1] in (2, 4) and suffix not in (".tif", ".tiff"):
        array = np.ascontiguousarray(array[..., 0])
    if array.ndim not in (2, 3):
        raise UnsupportedFileError(
            f"{path.name!r}: a {array.ndim}D image (shape {array.shape}) is not supported"
        )
    metadata: dict = {
        "series_description": path.stem,
        "geometry_source": "raster resolution" if spacing_yx else "none (1 mm per pixel assumed)",
        "rgb": bool(rgb),
        "format": suffix.lstrip(".").replace("jpeg", "jpg").replace("tiff", "tif"),
    }
    if spacing_yx is None:
        spacing_yx = (1.0, 1.0)
        metadata["spacing_assumed"] = True
    if rgb:
        spacing = (*spacing_yx, 1.0)
    elif array.ndim == 3:
        spacing = (1.0, *spacing_yx)  # a page stack has no slice spacing
        metadata["slice_spacing_assumed"] = True
    else:
        spacing = spacing_yx
    return Volume(array, spacing=spacing, metadata=metadata)


def write_labels_png(
    path: str | os.PathLike,
    array,
    *,
    spacing: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a 2D label image as a PNG whose pixel values are the labels (8-bit, or 16-bit above 255).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png`` file.  The write is atomic: a temporary file beside it is renamed over it.
    array : array-like of int or bool, shape (y, x)
        Labels, 0..65535.
    spacing : tuple of float, optional
        ``(dy, dx)`` pixel size in mm, stored as the PNG resolution (so :func:`read_image` gives it back).
    overwrite : bool, optional
        Replace an existing file; without it an existing ``path`` is refused.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        When the array is not 2D, not integer/bool, or holds values outside 0..65535.
    OverwriteError
        When ``path`` exists and ``overwrite`` is false.
    """
    from PIL import Image

    labels = np.asarray(array)
    if labels.ndim != 2:
        raise ValueError(f"a PNG label image is 2D; got an array of shape {labels.shape}")
    image = Image.fromarray(_label_values(labels, "PNG"))
    options = {}
    if spacing is not None:
        dy, dx = check_spacing(spacing, 2)
        options["dpi"] = (25.4 / dx, 25.4 / dy)
    target = Path(os.fspath(path))
    with atomic_path(target, overwrite=overwrite) as temporary:
        image.save(temporary, format="PNG", **options)
    return target


def _label_values(labels: np.ndarray, kind: str) -> np.ndarray:
    """``labels`` as uint8 (or uint16 above 255), refused unless integers in 0..65535."""
    if labels.dtype.kind not in "uib":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > 65535:
        raise ValueError(f"{kind} labels must lie in 0..65535, got {low}..{high}")
    return labels.astype(np.uint8 if high <= 255 else np.uint16)


def write_labels_tiff(
    path: str | os.PathLike,
    array,
    *,
    spacing: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a 2D label image, or a ``(z, y, x)`` stack as a multi-page TIFF, whose pixel values are the labels.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif``/``.tiff`` file (Deflate-compressed, 8-bit, or 16-bit above 255).  The write is atomic.
    array : array-like of int or bool, shape (y, x) or (z, y, x)
        Labels, 0..65535.
    spacing : tuple of float, optional
        ``(dy, dx)`` pixel size in mm, stored as the TIFF resolution (so :func:`read_image` gives it back).
    overwrite : bool, optional
        Replace an existing file; without it an existing ``path`` is refused.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        When the array is not 2D or 3D, not integer/bool, or holds values outside 0..65535.
    OverwriteError
        When ``path`` exists and ``overwrite`` is false.
    """
    import tifffile

    labels = np.asarray(array)
    if labels.ndim not in (2, 3):
        raise ValueError(f"a TIFF label image is 2D or a 3D stack; got an array of shape {labels.shape}")
    values = _label_values(labels, "TIFF")
    options: dict = {"photometric": "minisblack", "compression": "zlib"}
    if spacing is not None:
        dy, dx = check_spacing(spacing, 2)
        options["resolution"], options["resolutionunit"] = (10.0 / dx, 10.0 / dy), "CENTIMETER"
    target = Path(os.fspath(path))
    with atomic_path(target, overwrite=overwrite) as temporary:
        tifffile.imwrite(temporary, values, **options)
    return target
