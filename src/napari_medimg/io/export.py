"""NIfTI outputs of DICOM series: BIDS-style sidecar values, ``.bval``/``.bvec`` files, dcm2niix-like names.

``medimg convert`` writes one stack; ``medimg convert IN OUTDIR --all`` writes every stack of every series of
a folder (:func:`convert_all`) into one output folder, as a unit.

b-vectors: the DICOM gradient directions are in patient LPS (``metadata["volume_info"][v]["b_vector_lps"]``);
the ``.bvec`` file holds them in the FSL convention, i.e. along the voxel axes of the NIfTI file as written,
with the first component negated when the NIfTI affine has a positive determinant.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..geometry import Volume
from ..progress import ProgressCallback

__all__ = [
    "bids_sidecar",
    "diffusion_files",
    "nifti_name",
    "write_series_nifti",
    "convert_all",
    "BIDS_KEYS",
]

#: acquisition values copied into the sidecar under their BIDS names (none of them identifies a person)
BIDS_KEYS = (
    "EchoTime",
    "RepetitionTime",
    "FlipAngle",
    "SliceTiming",
    "PhaseEncodingDirection",
    "MagneticFieldStrength",
)


def bids_sidecar(volume: Volume) -> dict:
    """BIDS-style keys of a DICOM-derived Volume (seconds, degrees), where the header gives them.

    Parameters
    ----------
    volume : Volume
        From :func:`~napari_medimg.io.dicom.read_series`.

    Returns
    -------
    dict
        ``Modality``, ``Manufacturer`` and the :data:`BIDS_KEYS` present, plus ``ConversionSoftware``.
    """
    meta = volume.metadata
    acquisition = meta.get("acquisition") or {}
    sidecar: dict = {"ConversionSoftware": "napari-medimg"}
    if meta.get("modality"):
        sidecar["Modality"] = meta["modality"]
    if meta.get("manufacturer"):
        sidecar["Manufacturer"] = meta["manufacturer"]
    for key in BIDS_KEYS:
        value = acquisition.get(key)
        if value is not None and (not isinstance(value, float) or np.isfinite(value)):
            sidecar[key] = value
    return sidecar


def diffusion_files(volume: Volume) -> tuple[str, str] | None:
    """Text of the ``.bval`` and ``.bvec`` files of a 4D diffusion Volume, None when it has no b-values.

    Parameters
    ----------
    volume : Volume
        A ``(volume, z, y, x)`` Volume whose ``metadata["volume_info"]`` gives ``b_value`` per volume.

    Returns
    -------
    tuple or None
        ``(bval_text, bvec_text)``; b-vectors in the FSL convention of the NIfTI as written (see module doc),
        ``bvec_text`` None when a diffusion-weighted volume has no gradient direction in the files; None
        when no volume has a b-value above 0.
    """
    info = volume.metadata.get("volume_info") or []
    if volume.ndim != 4 or len(info) != volume.shape[0] or not any(v.get("b_value", 0) > 0 for v in info):
        return None
    from .nifti import volume_to_nifti_affine

    values = [float(v.get("b_value", 0.0)) for v in info]
    affine = volume_to_nifti_affine(volume)[:3, :3]
    axes = affine / np.linalg.norm(affine, axis=0)  # RAS directions of the voxel axes i, j, k
    if any(b > 0 and not entry.get("b_vector_lps") for entry, b in zip(info, values, strict=True)):
        return " ".join(f"{v:g}" for v in values) + "\n", None  # directions unknown: no .bvec
    vectors = []
    for entry, b_value in zip(info, values, strict=True):
        lps = np.asarray(entry.get("b_vector_lps") or [0.0, 0.0, 0.0], float)
        if b_value == 0 or not np.any(lps):
            vectors.append(np.zeros(3))
            continue
        voxel = axes.T @ (lps * np.array([-1.0, -1.0, 1.0]))
        if np.linalg.det(affine) > 0:
            voxel[0] = -voxel[0]
        vectors.append(voxel / np.linalg.norm(voxel) * np.linalg.norm(lps))  # GE: about 1 (ge_scaled_b_value)
    bval = " ".join(f"{v:g}" for v in values) + "\n"
    bvec = "\n".join(" ".join(f"{row[i]:.6f}" for row in vectors) for i in range(3)) + "\n"
    return bval, bvec


#: the series description's share of a file name: a long-string (LO) value's limit, which some writers exceed
_DESCRIPTION_CHARACTERS = 64


def nifti_name(series, deidentify: bool = False) -> str:
    """dcm2niix-like file stem of a stack: series number, description, stack label (``5_ep2d_bold_e2_ph``).

    Parameters
    ----------
    series : DicomSeries
        The stack.
    deidentify : bool
        Leave the series description out (it is removed by the de-identification profile).

    Returns
    -------
    str
        A file-system-safe stem (the description cut to its first 64 characters).
    """
    parts = [str(series.header.series_number) if series.header.series_number is not None else "series"]
    if series.header.description and not deidentify:
        parts.append(series.header.description[:_DESCRIPTION_CHARACTERS])
    if series.label:
        parts.append(series.label)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(parts)).strip("_.") or "series"


def write_series_nifti(
    series,
    path: str | os.PathLike,
    *,
    philips_float: bool = False,
    overwrite: bool = False,
    sources: Iterable[str | os.PathLike] = (),
    sidecar_filter: Callable[[dict], dict] | None = None,
    progress: ProgressCallback | None = None,
) -> Volume:
    """Write one stack as NIfTI with its JSON sidecar (and ``.bval``/``.bvec`` for diffusion), as one unit.

    An uncompressed ``.nii`` is written straight from the DICOM files: each stored image is decoded once and
    its slices are written at their place in the file (:func:`~napari_medimg.io.dicom.pixels.stream_pixels`),
    so the whole array is never held in memory and the disk writes while the rest is read.  The file is
    byte-identical to ``write_nifti(read_series(series, lazy=False), path)``, sidecar included.  A
    ``.nii.gz``, or a stack whose dtype is only known once read (``int32`` narrowed to ``int16``), is read
    whole first.  The image, the sidecar and the diffusion files are committed together
    (:func:`~napari_medimg.io.atomic.atomic_files`): complete, or the old files untouched.

    Parameters
    ----------
    series : DicomSeries
        One stack from :func:`~napari_medimg.io.dicom.scan_dicom`.
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz`` file; the sidecar is :func:`~napari_medimg.io.nifti.sidecar_path`, the
        diffusion files share its stem.
    philips_float : bool
        Philips floating-point values.
    overwrite : bool
        Replace existing outputs.
    sources : iterable of path-like
        Inputs the outputs must not replace.
    sidecar_filter : callable, optional
        ``sidecar_filter(dict) -> dict`` applied to the sidecar (de-identification).
    progress : callable, optional
        ``progress(done, total)`` per image read.

    Returns
    -------
    Volume
        The stack as written (its array maps the written ``.nii``, or is the array read for ``.nii.gz``).
    """
    from dataclasses import replace

    from .atomic import atomic_files
    from .dicom import read_series, series_metadata
    from .dicom.pixels import stream_pixels
    from .dicom.series import output_dtype
    from .nifti import (
        NIFTI_DATA_OFFSET,
        BlockWriter,
        lps_to_nifti_affine,
        nifti_header_block,
        sidecar_path,
        write_block,
    )

    path = Path(os.fspath(path))
    if philips_float and series.dtype.kind == "i":
        dtype, fill = output_dtype(series.frames, philips_float)
        series = replace(series, dtype=dtype, fill_value=fill)
    affine = lps_to_nifti_affine(series.affine)
    if not np.all(np.isfinite(affine)):
        raise ValueError("the stack's geometry (spacing, origin or direction) is not finite")
    streamed = series.dtype != np.int32 and not path.name.lower().endswith(".gz")
    if streamed:  # what the diffusion files need (b-values, geometry) is known before any pixel is read
        shape, outline = series.array_shape, np.broadcast_to(np.zeros((), series.dtype), series.array_shape)
        summary, acquisition = series.summary(), series.acquisition()
        volume = Volume(outline, series.spacing, series.origin, series.direction, summary)
    else:
        volume = read_series(series, lazy=False, philips_float=philips_float, progress=progress)
    diffusion = diffusion_files(volume)
    extra = (
        []
        if diffusion is None
        else [s for s, text in zip((".bval", ".bvec"), diffusion, strict=True) if text]
    )
    targets = [path, sidecar_path(path), *(sidecar_path(path).with_suffix(suffix) for suffix in extra)]
    with atomic_files(targets, overwrite=overwrite, sources=sources) as temporaries:
        image_tmp, json_tmp = temporaries[:2]
        if streamed:
            slice_bytes = int(np.prod(shape[-2:])) * series.dtype.itemsize
            descriptor = os.open(image_tmp, os.O_WRONLY)
            try:
                timing = {"acquisition": acquisition}  # the repetition time is the 4th zoom
                write_block(descriptor, nifti_header_block(shape, series.dtype, affine, timing), 0)
                with BlockWriter(descriptor) as writer:  # the disk writes overlap the reading
                    stream_pixels(
                        series,
                        lambda slot, values: writer.write(values, NIFTI_DATA_OFFSET + slot * slice_bytes),
                        philips_float,
                        progress,
                    )
            finally:
                os.close(descriptor)
            array = np.memmap(image_tmp, series.dtype, "r", NIFTI_DATA_OFFSET, shape)
            sample = np.asarray(array if array.ndim == 3 else array[0])
            volume = Volume(
                array,
                series.spacing,
                series.origin,
                series.direction,
                series_metadata(
                    series,
                    sample,
                    False,
                    series.dtype,
                    philips_float,
                    summary=summary,
                    acquisition=acquisition,
                ),
            )
        else:
            from .nifti import _nifti_image_file

            _nifti_image_file(volume, image_tmp)
        volume.metadata.update(bids_sidecar(volume))
        sidecar = {k: v for k, v in volume.metadata.items() if k != "lazy"}
        if sidecar_filter is not None:
            sidecar = sidecar_filter(sidecar)
        Path(json_tmp).write_text(json.dumps(sidecar, indent=2, allow_nan=False, default=str) + "\n")
        for temporary, suffix in zip(temporaries[2:], extra, strict=True):
            Path(temporary).write_text(diffusion[0] if suffix == ".bval" else diffusion[1])
    if streamed:
        volume.array = np.memmap(path, series.dtype, "r", NIFTI_DATA_OFFSET, shape)
    return volume


def convert_all(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    philips_float: bool = False,
    overwrite: bool = False,
    deidentify: bool = False,
    sidecar_filter=None,
) -> list[Path]:
    """Write every stack of every series under ``path`` as NIfTI (+ JSON, + ``.bval``/``.bvec``) into ``out``.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM folder (or file).
    out : str or os.PathLike
        Output folder, written as a unit (atomically; see :mod:`napari_medimg.io.atomic`).
    philips_float : bool
        Philips floating-point values.
    overwrite : bool
        Replace an existing output folder that napari-medimg wrote.
    deidentify : bool
        Names without series descriptions; ``sidecar_filter`` should then drop identifying keys.
    sidecar_filter : callable, optional
        ``sidecar_filter(dict) -> dict`` applied to every sidecar.

    Returns
    -------
    list of Path
        The NIfTI files written (final paths).
    """
    from .atomic import atomic_directory
    from .dicom import read_series, scan_dicom
    from .nifti import write_nifti

    scan = scan_dicom(path, philips_float=philips_float)
    written, names = [], set()
    out = Path(os.fspath(out))
    with atomic_directory(out, overwrite=overwrite, sources=[path], kind="NIfTI conversion") as temporary:
        for series in scan.series:
            stem, count = nifti_name(series, deidentify), 2
            while stem in names:
                stem, count = f"{nifti_name(series, deidentify)}_{count}", count + 1
            names.add(stem)
            volume = read_series(series, lazy=False, philips_float=philips_float)
            sidecar = {**{k: v for k, v in volume.metadata.items() if k != "lazy"}, **bids_sidecar(volume)}
            if sidecar_filter is not None:
                sidecar = sidecar_filter(sidecar)
            write_nifti(volume, Path(temporary) / f"{stem}.nii.gz", sidecar=sidecar)
            diffusion = diffusion_files(volume)
            if diffusion is not None:
                (Path(temporary) / f"{stem}.bval").write_text(diffusion[0])
                if diffusion[1] is not None:
                    (Path(temporary) / f"{stem}.bvec").write_text(diffusion[1])
            written.append(out / f"{stem}.nii.gz")
    return written
