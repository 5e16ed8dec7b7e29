"""``medimg convert PATH OUT.nii.gz [--series UID] [--stack LABEL] [--deidentify]``: DICOM (or NIfTI) to NIfTI
(4D for multi-volume stacks, with ``.bval``/``.bvec`` for diffusion), a de-identified DICOM copy when OUT is a
folder, or every series and stack with ``--all``."""

from __future__ import annotations

from pathlib import Path

#: what `medimg convert` writes as NIfTI (one file; it reads .hdr/.img pairs too)
_NIFTI_OUTPUTS = (".nii", ".nii.gz")
#: what a de-identified sidecar keeps (an allow-list: a new metadata key is dropped until reviewed)
_DEIDENTIFIED_KEYS = (
    "modality",
    "stack",
    "enhanced_multiframe",
    "files",
    "dimensions",
    "spacing",
    "orientation",
    "geometry_source",
    "warnings",
    "dtype",
    "units",
    "window_center",
    "window_width",
    "window_presets",
    "gantry_tilt_degrees",
    "values",
    "volumes",
    "volume_axis",
    "volume_order",
    "volume_info",
    "mosaic",
    "images",
    "implausible_gap",
    "acquisition",
    # BIDS-style acquisition values (io/export.py): acquisition parameters, not identifying
    "ConversionSoftware",
    "Modality",
)


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "convert",
        help="convert a DICOM series to NIfTI (or to a de-identified DICOM copy)",
        description="Write one series as NIfTI with the same world geometry, plus a JSON sidecar with the "
        "PHI-free summary (geometry source, warnings). With --deidentify the sidecar also drops UIDs and "
        "paths; when OUT is a folder (no .nii/.nii.gz suffix) the series' DICOM files are copied there "
        "de-identified (PS3.15 Annex E basic profile, UIDs remapped, private tags removed).",
    )
    parser.add_argument("path", type=Path, help="DICOM file, folder of DICOM files, or NIfTI file")
    parser.add_argument(
        "out", type=Path, metavar="OUT.nii.gz", help="output NIfTI file (or folder, see above)"
    )
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to convert (see `medimg info`)")
    parser.add_argument(
        "--stack",
        metavar="LABEL",
        help="one stack of a series split in several (e.g. e2, ph, e1_ph, fieldmap; see `medimg info`)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="write every series and stack of PATH as NIfTI into the folder OUT (dcm2niix-like names: "
        "series number, description, stack label; .bval/.bvec for diffusion)",
    )
    parser.add_argument("--deidentify", action="store_true", help="remove identifying data from the output")
    parser.add_argument(
        "--philips-float",
        action="store_true",
        help="Philips floating-point values (as dcm2niix) instead of displayed values",
    )
    parser.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="with --deidentify, also copy images flagged BurnedInAnnotation=YES (refused otherwise)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT if it exists (only an output medimg wrote)"
    )
    parser.set_defaults(handler=run)


def _deidentified(sidecar: dict) -> dict:
    """The allow-listed keys; per-volume acquisition times (AcquisitionTime is X/Z/D in the basic profile)
    become times relative to the first volume."""
    from ..io.export import BIDS_KEYS  # here, not at import: `medimg --help` does not load numpy

    allowed = {*_DEIDENTIFIED_KEYS, *BIDS_KEYS}
    kept = {k: v for k, v in sidecar.items() if k in allowed}
    if kept.get("volume_info"):
        times = [v.get("acquisition_time") for v in kept["volume_info"]]
        start = min((t for t in times if t is not None), default=None)
        kept["volume_info"] = [
            {
                **{k: v for k, v in entry.items() if k != "acquisition_time"},
                **({"time_from_first_volume_s": round(t - start, 6)} if t is not None else {}),
            }
            for entry, t in zip(kept["volume_info"], times, strict=True)
        ]
    return kept


def _check_burned_in(series, allow: bool) -> None:
    """Refuse a series any of whose files declares BurnedInAnnotation = YES (unless ``allow``)."""
    import pydicom

    from ..io.deid import check_burned_in

    for path in sorted({frame.path for frame in series.frames}):
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["BurnedInAnnotation"])
        check_burned_in(header, path, allow=allow)


def run(args) -> int:
    from ..io.volumes import is_nifti_path

    nifti_out = args.out.name.lower().endswith(_NIFTI_OUTPUTS)
    if args.all:
        if nifti_out:
            raise ValueError(
                f"with --all, OUT is a folder to write the NIfTI files into, not {args.out.name}"
            )
        from ..io.export import convert_all

        written = convert_all(
            args.path,
            args.out,
            philips_float=args.philips_float,
            overwrite=args.overwrite,
            deidentify=args.deidentify,
            sidecar_filter=_deidentified if args.deidentify else None,
        )
        print(f"{args.out}: {len(written)} NIfTI files")
        for path in written:
            print(f"  {path.name}")
        return 0
    if not nifti_out:
        if not args.deidentify:
            raise ValueError(
                f"{args.out} is not a .nii/.nii.gz file; a folder output is a de-identified DICOM "
                "copy and needs --deidentify"
            )
        from ..io.dicom_write import deidentify_series

        written = deidentify_series(
            args.path,
            args.out,
            series_uid=args.series,
            overwrite=args.overwrite,
            allow_burned_in=args.allow_burned_in,
        )
        print(f"{args.out}: {len(written)} de-identified DICOM files")
        return 0
    if is_nifti_path(args.path):
        from ..io.nifti import read_nifti, write_nifti

        volume = read_nifti(args.path)
        sidecar = {k: v for k, v in volume.metadata.items() if k != "lazy"}
        if args.deidentify:
            sidecar = _deidentified(sidecar)
        write_nifti(volume, args.out, overwrite=args.overwrite, sidecar=sidecar, sources=[args.path])
    else:
        from ..io.dicom import scan_dicom
        from ..io.export import diffusion_files, write_series_nifti
        from ..io.volumes import choose_stack

        scan = scan_dicom(args.path, philips_float=args.philips_float)
        series = choose_stack(scan, args.series, args.stack)
        if args.deidentify:  # the pixels go out unchanged: identifying text burned into them is refused
            _check_burned_in(series, args.allow_burned_in)
        volume = write_series_nifti(
            series,
            args.out,
            philips_float=args.philips_float,
            overwrite=args.overwrite,
            sources=[args.path],
            sidecar_filter=_deidentified if args.deidentify else None,
        )
        diffusion = diffusion_files(volume)
        if diffusion is not None and diffusion[1] is None:
            print("warning: the files give b-values but no gradient directions; no .bvec was written")
    print(
        f"{args.out}: {'x'.join(map(str, volume.shape))} voxels, spacing "
        f"{' x '.join(f'{s:g}' for s in volume.spacing)} mm"
    )
    for warning in volume.metadata.get("warnings", []):
        print(f"warning: {warning}")
    return 0
