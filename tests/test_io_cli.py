"""``medimg info`` and ``medimg convert`` on real and synthetic series."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_medimg.cli import main
from napari_medimg.geometry import Volume
from napari_medimg.io.dicom import read_dicom
from napari_medimg.io.dicom_write import write_dicom_series
from napari_medimg.io.nifti import read_nifti


@pytest.fixture()
def series_folder(tmp_path):
    volume = Volume(
        np.arange(5 * 8 * 9, dtype=np.int16).reshape(5, 8, 9) - 100,
        (2.0, 1.0, 1.5),
        (3.0, 4.0, 5.0),
        metadata={"modality": "CT"},
    )
    template = pydicom.Dataset()
    template.PatientName, template.PatientID, template.PatientBirthDate = (
        "Private^Patient",
        "PP-1",
        "19800202",
    )
    write_dicom_series(volume, tmp_path / "ct", template=template, series_description="chest")
    return tmp_path / "ct"


def test_info_json_lists_geometry_without_phi(series_folder, capsys):
    assert main(["info", str(series_folder), "--json"]) == 0
    output = capsys.readouterr().out
    info = json.loads(output)
    (series,) = info["series"]
    assert series["series_description"] == "chest" and series["shape"] == [5, 8, 9]
    assert series["spacing"] == [2.0, 1.0, 1.5]
    assert np.allclose(series["affine"], read_dicom(series_folder)[0].affine)
    assert "Private" not in output and "PP-1" not in output and "19800202" not in output
    assert main(["info", str(series_folder)]) == 0
    assert "spacing (mm)  2 x 1 x 1.5" in capsys.readouterr().out


def test_convert_to_nifti_with_sidecar_and_deidentified_copy(series_folder, tmp_path, capsys):
    out = tmp_path / "out" / "chest.nii.gz"
    assert main(["convert", str(series_folder), str(out), "--deidentify"]) == 0
    volume = read_nifti(out)
    (dicom,) = read_dicom(series_folder)
    assert np.array_equal(volume.array, dicom.array) and np.allclose(volume.affine, dicom.affine, atol=1e-5)
    sidecar = json.loads((tmp_path / "out" / "chest.json").read_text())
    assert "series_uid" not in sidecar and sidecar["spacing"] == [2.0, 1.0, 1.5]
    assert main(["convert", str(series_folder), str(out)]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert (
        main(["convert", str(series_folder), str(tmp_path / "copy")]) == 2
    )  # folder output needs --deidentify
    assert main(["convert", str(series_folder), str(tmp_path / "copy"), "--deidentify"]) == 0
    copied = pydicom.dcmread(next((tmp_path / "copy").iterdir()))
    assert str(copied.PatientName) != "Private^Patient" and copied.PatientIdentityRemoved == "YES"
    assert main(["convert", str(series_folder), str(tmp_path / "x.nii.gz"), "--series", "1.2.3"]) == 2
    assert "no series matches" in capsys.readouterr().err


@pytest.mark.shared_data
def test_convert_picks_one_stack_of_the_philips_file(shared_data, tmp_path, capsys):
    folder = shared_data / "dicom" / "philips_enhanced_b0_fieldmap" / "dicom"
    assert main(["convert", str(folder), str(tmp_path / "a.nii.gz")]) == 2
    assert "--stack 'fieldmap'" in capsys.readouterr().err
    assert main(["convert", str(folder), str(tmp_path / "fmap.nii.gz"), "--stack", "fieldmap"]) == 0
    ours = nib.as_closest_canonical(nib.load(tmp_path / "fmap.nii.gz")).get_fdata()
    reference = nib.as_closest_canonical(
        nib.load(folder.parent / "reference_dcm2niix" / "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii")
    ).get_fdata()
    assert np.abs(ours - reference).max() < 1e-3 * np.abs(reference).max()


def test_a_named_command_builds_only_its_parser_with_the_same_help(capsys):
    import subprocess
    import sys

    from napari_medimg.cli import _all_command_modules, build_parser

    def commands(parser):
        return parser._subparsers._group_actions[0].choices  # argparse keeps the sub-parsers here

    full = build_parser()
    # every module registers the command of its name; the adapter's `demo` comes through its entry point
    assert set(commands(full)) == set(_all_command_modules()) and "demo" in commands(full)
    assert _all_command_modules()["demo"] == "napari_medimg.plugin.demo_command"
    for name in ("convert", "info", "cnn", "demo"):
        alone = build_parser(name)
        assert set(commands(alone)) == {name}
        assert commands(alone)[name].format_help() == commands(full)[name].format_help()
    with pytest.raises(SystemExit) as exit_info:  # an unknown command: argparse's error naming every command
        main(["no-such-command"])
    assert exit_info.value.code == 2 and "convert" in capsys.readouterr().err
    code = (
        "import sys\nfrom napari_medimg.cli import main\ntry:\n    main(['convert', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('napari_medimg.cli.')), 'numpy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "['napari_medimg.cli.convert'] False"
