"""``medimg info PATH [--json]``: the series in a DICOM file/folder or a NIfTI file, with geometry and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "info",
        help="list the image series in a DICOM file/folder or NIfTI file",
        description="Read headers only and list every series: modality, description, shape, spacing, "
        "orientation, the index-to-LPS affine, how the geometry was derived and any warning (gaps, duplicates, "
        "uneven spacing, gantry tilt). No patient name, ID or birth date is printed.",
    )
    parser.add_argument("path", type=Path, help="DICOM file, folder of DICOM files (recursive) or NIfTI file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)


def describe(path: Path) -> dict:
    """The PHI-free description printed by ``medimg info`` (also used by the DICOM browser)."""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        from ..io.nifti import read_nifti

        volume = read_nifti(path)
        entry = {
            **volume.metadata,
            "shape": list(volume.shape),
            "spacing": volume.spacing.round(6).tolist(),
            "affine": volume.affine.round(6).tolist(),
            "warnings": [],
        }
        return {"path": str(path), "series": [entry], "skipped": []}
    from ..io.dicom import scan_dicom

    scan = scan_dicom(path)
    series = []
    for item in scan.series:
        entry = item.summary()
        entry["shape"] = list(item.shape)
        entry["affine"] = np.round(item.affine, 6).tolist()
        series.append(entry)
    return {
        "path": str(path),
        "series": series,
        "skipped": [{"file": name, "reason": reason} for name, reason in scan.skipped],
    }


def run(args) -> int:
    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: {len(info['series'])} series")
    for entry in info["series"]:
        print(f"\n{entry.get('series_description', '')}  [{entry.get('modality', '')}]")
        if entry.get("series_uid"):
            print(f"  series UID   {entry['series_uid']}")
        print(f"  shape (z,y,x) {' x '.join(str(s) for s in entry['shape'])}")
        print(f"  spacing (mm)  {' x '.join(f'{s:g}' for s in entry['spacing'])}")
        print(f"  orientation   {entry.get('orientation', '')}")
        print(f"  geometry      {entry.get('geometry_source', '')}")
        print("  affine (k,j,i -> LPS mm)")
        for row in entry["affine"][:3]:
            print("    " + "  ".join(f"{v:10.4f}" for v in row))
        for warning in entry.get("warnings", []):
            print(f"  warning: {warning}")
    for skipped in info["skipped"]:
        print(f"\nskipped {skipped['file']}: {skipped['reason']}")
    return 0
