"""File ▸ Open of medical files reaches our reader, preselected in napari's "Choose reader" dialog."""

import numpy as np
import pytest
from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog
from napari.plugins import _npe2

from napari_medimg.geometry import Volume
from napari_medimg.io.nifti import write_nifti
from napari_medimg.samples import pydicom_test_file

OURS = "napari-medimg"


@pytest.fixture
def medical_paths(tmp_path):
    nifti = tmp_path / "scan.nii.gz"
    write_nifti(Volume(np.zeros((3, 4, 5), np.int16)), nifti)
    folder = tmp_path / "series"
    folder.mkdir()
    return {"dicom file": pydicom_test_file("CT_small.dcm"), "nifti": str(nifti), "folder": str(folder)}


@pytest.mark.parametrize("kind", ["dicom file", "nifti", "folder"])
def test_our_reader_is_the_preselected_choice_when_napari_asks(
    make_napari_viewer, qtbot, medical_paths, kind
):
    make_napari_viewer()  # napari discovers the installed plugins
    readers = _npe2.get_readers(medical_paths[kind])
    assert OURS in readers
    dialog = QtReaderDialog(pth=medical_paths[kind], readers=readers)
    qtbot.addWidget(dialog)
    buttons = dialog.reader_btn_group.buttons()
    checked = dialog.reader_btn_group.checkedButton() or buttons[0]  # Qt checks the first button shown
    assert checked.text() == readers[OURS]


def test_unknown_files_are_not_claimed(make_napari_viewer, tmp_path):
    make_napari_viewer()
    readme = tmp_path / "readme.txt"
    readme.write_text("not an image")
    assert OURS not in _npe2.get_readers(str(readme))


def test_saving_labels_as_dicom_seg_without_a_source_series_says_why(make_napari_viewer, tmp_path):
    from napari_medimg.plugin.writers import LayerNotWritten

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((3, 8, 8), np.uint8), name="painted")
    with pytest.raises(LayerNotWritten, match="which DICOM series it was drawn on"):
        viewer.layers.save(str(tmp_path / "painted.dcm"), selected=False, plugin="napari-medimg")
    assert not (tmp_path / "painted.dcm").exists()


@pytest.mark.shared_data
def test_opening_a_tilted_series_tells_the_user_and_keeps_the_message(make_napari_viewer, shared_data):
    from napari.utils.notifications import notification_manager

    from napari_medimg.plugin.home import HomeWidget
    from napari_medimg.plugin.messages import MESSAGES

    viewer = make_napari_viewer()
    home = HomeWidget(viewer)
    before = len(notification_manager.records)
    (layer,) = viewer.open(str(shared_data / "dicom" / "siemens_ct_gantry_tilt"), plugin="napari-medimg")
    shown = [str(r.message) for r in notification_manager.records[before:]]
    assert any(layer.name in m and "tilt" in m.lower() for m in shown), shown
    assert any(m.source == layer.name and "tilt" in m.text.lower() for m in MESSAGES)
    assert any("tilt" in home.messages.item(i).text().lower() for i in range(home.messages.count()))


def test_nifti_names_that_would_elide_alike_are_told_apart(make_napari_viewer, tmp_path):
    from napari_medimg.plugin.names import ELIDE_KEEP

    viewer = make_napari_viewer()
    names = ["sub-01_ses-01_acq-mprage_run-1_T1w", "sub-01_ses-02_acq-mprage_run-1_T1w"]
    for name in names:
        write_nifti(Volume(np.zeros((3, 4, 5), np.int16)), tmp_path / f"{name}.nii.gz")
        viewer.open(str(tmp_path / f"{name}.nii.gz"), plugin="napari-medimg")
    shown = [layer.name for layer in viewer.layers]
    assert shown[0] == names[0] and shown[1].startswith("ses-02 · ")

    def elided(text):
        return text if len(text) <= 2 * ELIDE_KEEP + 1 else text[:ELIDE_KEEP] + text[-ELIDE_KEEP:]

    assert elided(shown[0]) != elided(shown[1])
