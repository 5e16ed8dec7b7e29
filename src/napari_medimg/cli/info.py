"""``medimg info PATH [--json]``: the series and stacks in a DICOM file/folder or a NIfTI file, with geometry and
warnings (a raster image: its shape and pixel size).  The JSON never holds NaN or infinity (they become null): it is strict JSON."""

from __future__ import annotations

import json
from pathlib import Path


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "info",
        help="list the image series in a DICOM file/folder or NIfTI file",
        description="Read headers only and list every series and stack (echo, magnitude/phase, ...; the label "
        "is what `medimg convert --stack` takes): modality, description, shape (with the volume count of 4D "
        "stacks), spacing, orientation, the index-to-LPS affine, how the geometry was derived and any warning "
        "(gaps, implausible gaps, duplicates, uneven spacing, gantry tilt). No patient name, ID or birth date is "
        "printed.",
    )
    parser.add_argument(
        "path", type=Path, help="DICOM file, folder of DICOM files (recursive), NIfTI file or raster image"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)


def describe(path: Path) -> dict:
    """The PHI-free description printed by ``medimg info`` (also used by the DICOM browser)."""
    from ..io.volumes import is_nifti_path

    if is_nifti_path(path):
        from ..io.nifti import read_nifti

        volume = read_nifti(path)
        entry = {
            **volume.metadata,
            "shape": list(volume.shape),
            "spacing": volume.spacing.round(6).tolist(),
            "affine": volume.affine.round(6).tolist(),
            "warnings": list(volume.metadata.get("warnings", [])),
        }
        return {"path": str(path), "series": [entry], "skipped": []}
    import numpy as np

    from ..io.raster import is_raster_path

    if is_raster_path(path):
        from ..io.raster import read_image

        volume = read_image(path)
        notes = []
        if volume.metadata.get("spacing_assumed"):
            notes.append(
                "The file gives no physical pixel size: 1 mm per pixel is assumed (scales in pixels)."
            )
        entry = {
            **volume.metadata,
            "shape": list(volume.shape),
            "spacing": np.round(volume.spacing, 6).tolist(),
            "warnings": notes,
        }
        return {"path": str(path), "series": [entry], "skipped": []}
    from ..io.dicom import scan_dicom

    scan = scan_dicom(path)
    series = []
    for item in scan.series:
        entry = item.summary()
        entry["shape"] = list(item.array_shape)
        entry["affine"] = np.round(item.affine, 6).tolist()
        series.append(entry)
    return {
        "path": str(path),
        "series": series,
        "skipped": [{"file": name, "reason": reason} for name, reason in scan.skipped],
    }


def strict_json(value):
    """``value`` with every NaN or infinite float replaced by None, so that it dumps as strict JSON.

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples and scalars.

    Returns
    -------
    object
        The same structure (lists for tuples and arrays).
    """
    import numpy as np  # here, not at import: `medimg --help` does not load numpy

    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [strict_json(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def run(args) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(strict_json(info), indent=2, allow_nan=False))
        return 0
    series = {(e.get("series_uid"), e.get("series_number")) for e in info["series"]}
    stacks = f", {len(info['series'])} stacks" if len(info["series"]) != len(series) else ""
    print(f"{info['path']}: {len(series)} series{stacks}")
    for entry in info["series"]:
        print(f"\n{entry.get('series_description', '')}  [{entry.get('modality', '')}]")
        if entry.get("series_uid"):
            print(f"  series UID   {entry['series_uid']}")
        if entry.get("stack"):
            print(f"  stack         {entry['stack']}  (medimg convert --stack {entry['stack']})")
        axes = {4: "(volume,z,y,x)", 3: "(z,y,x)", 2: "(y,x)"}[len(entry["shape"])]
        if entry.get("rgb"):
            axes = "(y,x,colour)"
        print(f"  shape {axes} {' x '.join(str(s) for s in entry['shape'])}")
        if entry.get("volumes", 1) > 1:
            print(f"  volumes       {entry['volumes']}, ordered by {entry.get('volume_order', '')}")
        if entry.get("implausible_gap"):
            print("  FLAG          implausible gap between slices (see the warning); check the files")
        print(f"  spacing (mm)  {' x '.join(f'{s:g}' for s in entry['spacing'])}")
        if "affine" in entry:  # a raster image has no patient geometry
            print(f"  orientation   {entry.get('orientation', '')}")
        print(f"  geometry      {entry.get('geometry_source', '')}")
        if "affine" in entry:
            print("  affine (k,j,i -> LPS mm)")
            for row in entry["affine"][:3]:
                print("    " + "  ".join(f"{v:10.4f}" for v in row))
        for warning in entry.get("warnings", []):
            print(f"  warning: {warning}")
    for skipped in info["skipped"]:
        print(f"\nskipped {skipped['file']}: {skipped['reason']}")
    return 0
