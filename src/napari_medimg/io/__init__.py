"""Core subpackage `napari_medimg.io` (no napari or Qt imports).

:func:`read_volume` reads any image file the package knows (DICOM folder or file, NIfTI, raster images) and
:func:`select_volume` picks one volume of a 4D image; both are imported on first use (``napari_medimg.io``
itself stays light for the modules that only write).
"""

__all__ = ["read_volume", "select_volume"]


def __getattr__(name):
    if name in __all__:
        from . import volumes

        return getattr(volumes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
