"""napari-medimg: medical imaging from DICOM to a verified answer, as a library, a CLI and a napari plugin.

The core subpackages (``io``, ``processing``, ``measure``, ``learn``, ``pipeline``) work on numpy/dask
arrays plus :class:`~napari_medimg.geometry.Volume` geometry and never import napari or Qt; only
``napari_medimg.plugin`` does.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
