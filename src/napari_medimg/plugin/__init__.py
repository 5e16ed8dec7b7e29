"""The napari adapter: the only part of napari-medimg that imports napari or Qt."""
