"""One entry point for every image file the package reads, and the 3D view of one volume of a 4D image.

:func:`read_volume` replaces the NIfTI-or-DICOM dispatch that callers used to write themselves: a DICOM folder
or file (one stack of it), a NIfTI file, or a raster image (PNG, TIFF, GIF, JPEG, BMP).  :func:`select_volume`
gives volume ``N`` of a 4D ``(volume, z, y, x)`` image as a 3D Volume with that volume's metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..geometry import Volume
from .errors import NoSeriesError

__all__ = ["read_volume", "select_volume", "choose_stack", "is_nifti_path", "NIFTI_SUFFIXES"]

#: one-file NIfTI, and the header/image pairs of NIfTI-1 (``ni1``) and Analyze 7.5 (either file names the pair)
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when the file name ends in a NIfTI suffix (:data:`NIFTI_SUFFIXES`), in any case.

    Parameters
    ----------
    path : str or os.PathLike
        A file name.

    Returns
    -------
    bool
        Whether :func:`~napari_medimg.io.nifti.read_nifti` reads it (``.nii``, ``.nii.gz``, or either file of a
        ``.hdr``/``.img`` pair).
    """
    return Path(os.fspath(path)).name.lower().endswith(NIFTI_SUFFIXES)


def _set_apart(label: str) -> bool:
    """A stack beside a series' main one: its images that could not be placed, or all its images with the
    derived trace images last (:data:`~napari_medimg.io.dicom.series.ADC_LABEL`)."""
    from .dicom.series import ADC_LABEL

    return label.endswith("extra") or label.split("_")[-1] == ADC_LABEL


def choose_stack(scan, series_uid: str | None = None, stack: str | None = None):
    """The one stack of a :class:`~napari_medimg.io.dicom.DicomScan` picked by series UID and stack label.

    Parameters
    ----------
    scan : DicomScan
        Result of :func:`~napari_medimg.io.dicom.scan_dicom`.
    series_uid : str, optional
        SeriesInstanceUID.
    stack : str, optional
        Stack label (``e2``, ``ph``, ... as listed by ``medimg info``).

    Returns
    -------
    DicomSeries
        The stack.

    Raises
    ------
    NoSeriesError
        When none or several match; the message lists every stack with the options that pick it.  Without
        ``stack``, a series split only into its main stack and the ``extra`` stacks of images that could not be
        placed, or the ``adc`` stack of all its images with the derived trace images last, gives its main stack.
    """
    chosen = scan.get(series_uid) if series_uid else list(scan.series)
    if stack is not None:
        chosen = [s for s in chosen if s.label == stack]
    elif len({s.uid for s in chosen}) == 1:
        # a series whose images that could not be placed were set apart ('extra' stacks), or whose derived
        # trace images were left out ('adc' holds all; its warnings say so) is its main stack unless asked
        main = [s for s in chosen if not s.label]
        if len(main) == 1 and all(_set_apart(s.label) for s in chosen if s.label):
            chosen = main
    if len(chosen) == 1:
        return chosen[0]
    several = {s.uid for s in scan.series if sum(t.uid == s.uid for t in scan.series) > 1}
    listing = "; ".join(
        f"{s.uid}{f' --stack {s.label!r}' if s.label or s.uid in several else ''} '{s.name}' "
        f"{'x'.join(map(str, s.array_shape))}"
        for s in scan.series
    )
    wanted = f"{len(chosen)} stacks match" if chosen else "no series matches"
    raise NoSeriesError(
        f"{wanted}; choose one with --series UID (and --stack LABEL for a split series): {listing}"
    )


def read_volume(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    stack: str | None = None,
    philips_float: bool = False,
    lazy: bool | None = None,
) -> Volume:
    """Read a DICOM folder or file (one stack), a NIfTI file or a raster image as a Volume.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` (or a ``.hdr``/``.img`` pair), a raster image (``.png``, ``.tif``, ...), or a
        DICOM file or folder.
    series_uid : str, optional
        DICOM only: the SeriesInstanceUID when the folder holds several series.
    stack : str, optional
        DICOM only: the stack label when the series is split in several.
    philips_float : bool
        DICOM only: Philips floating-point values.
    lazy : bool, optional
        DICOM only: see :func:`~napari_medimg.io.dicom.read_series`.

    Returns
    -------
    Volume
        ``(z, y, x)``, ``(volume, z, y, x)`` for a 4D image, ``(y, x)`` for a 2D raster image, or
        ``(y, x, 3)`` with ``metadata["rgb"]`` for a colour raster image or a single colour DICOM file
        (:mod:`~napari_medimg.io.dicom.colour`).

    Raises
    ------
    MedImgReadError
        A subclass saying why the file cannot be read, or :class:`NoSeriesError` listing the stacks when a
        DICOM folder holds several and none was chosen.

    Examples
    --------
    >>> volume = read_volume("study/series_3")  # doctest: +SKIP
    >>> volume.shape  # doctest: +SKIP
    (10, 15, 64, 64)
    """
    if is_nifti_path(path):
        from .nifti import read_nifti

        return read_nifti(path)
    from .raster import is_raster_path

    if is_raster_path(path):
        from .raster import read_image

        return read_image(path)
    from .dicom import is_regular_file, read_series, scan_dicom
    from .dicom.colour import is_colour_file, read_colour_dicom

    if is_regular_file(path) and is_colour_file(path):  # a photograph or secondary capture: RGB (y, x, 3)
        return read_colour_dicom(path)
    scan = scan_dicom(path, philips_float=philips_float)
    try:
        series = choose_stack(scan, series_uid, stack)
    except NoSeriesError as error:
        raise NoSeriesError(f"{os.fspath(path)}: {error}") from None
    return read_series(series, lazy=lazy, philips_float=philips_float)


def select_volume(volume: Volume, index: int | None) -> Volume:
    """Volume ``index`` of a 4D ``(volume, z, y, x)`` image as a 3D Volume (a 3D one is returned as is).

    Parameters
    ----------
    volume : Volume
        A 3D or 4D image.
    index : int or None
        0-based volume index; None picks the only volume of a 3D image (a 4D image then raises).

    Returns
    -------
    Volume
        The 3D volume with the same spatial geometry; ``metadata["volume_index"]`` and that volume's entry of
        ``volume_info`` as ``metadata["volume"]``.

    Raises
    ------
    ValueError
        When a 4D image gets no index, or the index is out of range.

    Examples
    --------
    >>> first = select_volume(read_volume("fmri"), 0)  # doctest: +SKIP
    """
    if volume.ndim != 4:
        if index not in (None, 0):
            raise ValueError(f"the image is {volume.ndim}D and has no volume {index} (only volume 0)")
        return volume
    count = volume.shape[0]
    if index is None:
        raise ValueError(
            f"the image is 4D with {count} volumes; choose one with --volume N (0 to {count - 1})"
        )
    if not -count <= index < count:
        raise ValueError(f"volume {index} does not exist; the image has {count} volumes (0 to {count - 1})")
    index = index % count
    metadata = {k: v for k, v in volume.metadata.items() if k not in ("volume_info", "volume_axis")}
    info = volume.metadata.get("volume_info") or []
    if index < len(info):
        metadata["volume"] = info[index]
    metadata["volume_index"] = index
    metadata["dimensions"] = list(volume.shape[1:])
    return Volume(volume.array[index], volume.spacing, volume.origin, volume.direction, metadata)
