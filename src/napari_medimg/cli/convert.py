"""``medimg convert PATH OUT.nii.gz [--series UID] [--deidentify]``: DICOM (or NIfTI) to NIfTI, or a
de-identified DICOM copy when OUT is a folder."""

from __future__ import annotations

from pathlib import Path

_NIFTI = (".nii", ".nii.gz")
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
        help="one stack of a series split in several (e.g. FIELD_MAP, 'echo 2', see `medimg info`)",
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


def run(args) -> int:
    nifti_out = args.out.name.lower().endswith(_NIFTI)
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
    from ..io.nifti import read_nifti, write_nifti

    if args.path.name.lower().endswith(_NIFTI):
        volume = read_nifti(args.path)
    else:
        from ..io.dicom import read_series, scan_dicom

        scan = scan_dicom(args.path, philips_float=args.philips_float)
        chosen = scan.get(args.series) if args.series else scan.series
        if args.stack is not None:
            chosen = [s for s in chosen if s.label == args.stack]
        if len(chosen) != 1:
            listing = "; ".join(
                f"{s.uid}{f' --stack {s.label!r}' if s.label else ''} '{s.name}' "
                f"{'x'.join(map(str, s.shape))}"
                for s in scan.series
            )
            wanted = f"{len(chosen)} volumes match" if chosen else "no series matches"
            raise ValueError(
                f"{wanted} in {args.path}; choose one with --series UID (and --stack LABEL for a "
                f"split series): {listing}"
            )
        volume = read_series(chosen[0], lazy=False, philips_float=args.philips_float)
    sidecar = {
        k: v
        for k, v in volume.metadata.items()
        if k != "lazy" and (not args.deidentify or k in _DEIDENTIFIED_KEYS)
    }
    write_nifti(volume, args.out, overwrite=args.overwrite, sidecar=sidecar, sources=[args.path])
    print(
        f"{args.out}: {'x'.join(map(str, volume.shape))} voxels, spacing "
        f"{' x '.join(f'{s:g}' for s in volume.spacing)} mm"
    )
    for warning in volume.metadata.get("warnings", []):
        print(f"warning: {warning}")
    return 0
