"""Sample data contributions (File > Open Sample > napari-medimg)."""

from __future__ import annotations

from ..io.dicom import read_dicom_file
from ..samples import make_ct_phantom, pydicom_test_file
from .layers import layer_data_tuple

__all__ = ["ct_phantom", "pydicom_ct_small", "pydicom_mr_small"]


def ct_phantom() -> list[tuple]:
    """The CT-like phantom (HU, 2.5 × 0.7 × 0.7 mm) with its tissue and lesion ground-truth labels."""
    phantom = make_ct_phantom()
    return [
        layer_data_tuple(phantom.image, "image", name="CT phantom", colormap="gray"),
        layer_data_tuple(phantom.tissues, "labels", name="phantom tissues", opacity=0.35, visible=False),
        layer_data_tuple(
            phantom.lesions,
            "labels",
            name="phantom lesions",
            opacity=0.6,
            features=phantom.lesion_table.rename(columns={"label": "index"}),
        ),
    ]


def pydicom_ct_small() -> list[tuple]:
    """pydicom's real CT slice ``CT_small.dcm`` (128 × 128, 0.66 mm pixels, HU)."""
    return [
        layer_data_tuple(
            read_dicom_file(pydicom_test_file("CT_small.dcm")), "image", name="CT_small", colormap="gray"
        )
    ]


def pydicom_mr_small() -> list[tuple]:
    """pydicom's real MR slice ``MR_small.dcm`` (64 × 64, 0.31 mm pixels)."""
    return [
        layer_data_tuple(
            read_dicom_file(pydicom_test_file("MR_small.dcm")), "image", name="MR_small", colormap="gray"
        )
    ]
