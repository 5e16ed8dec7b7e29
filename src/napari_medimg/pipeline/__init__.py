"""Core subpackage `napari_medimg.pipeline` (no napari or Qt imports)."""
