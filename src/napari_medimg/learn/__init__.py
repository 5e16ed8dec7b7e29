"""Core subpackage `napari_medimg.learn` (no napari or Qt imports)."""
