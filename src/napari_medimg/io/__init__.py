"""Core subpackage `napari_medimg.io` (no napari or Qt imports)."""
