"""Core subpackage `napari_medimg.measure` (no napari or Qt imports)."""
