"""Image processing and segmentation on arrays with spacing (no napari)."""
