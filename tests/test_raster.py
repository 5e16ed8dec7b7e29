"""Raster reader/writer: PNG, TIFF (LZW), GIF, JPEG; grey/RGB; resolution → spacing; atomic label PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_medimg.io.errors import CorruptFileError, OverwriteError, UnsupportedFileError
from napari_medimg.io.raster import read_image, write_labels_png


def test_labels_png_round_trip_with_spacing(tmp_path):
    labels = np.random.default_rng(0).integers(0, 5, (40, 30))
    out = write_labels_png(tmp_path / "labels.png", labels, spacing=(0.5, 0.25))
    volume = read_image(out)
    assert volume.shape == (40, 30)
    np.testing.assert_array_equal(volume.array, labels)
    np.testing.assert_allclose(volume.spacing, (0.5, 0.25))
    assert "spacing_assumed" not in volume.metadata
    assert volume.metadata["rgb"] is False


def test_labels_png_16_bit_and_refusals(tmp_path):
    labels = np.arange(1200, dtype=np.int32).reshape(30, 40)
    volume = read_image(write_labels_png(tmp_path / "wide.png", labels))
    np.testing.assert_array_equal(volume.array, labels)
    assert volume.metadata["spacing_assumed"] is True
    np.testing.assert_allclose(volume.spacing, (1.0, 1.0))
    with pytest.raises(OverwriteError):
        write_labels_png(tmp_path / "wide.png", labels)
    write_labels_png(tmp_path / "wide.png", labels[:5], overwrite=True)
    assert read_image(tmp_path / "wide.png").shape == (5, 40)
    with pytest.raises(ValueError, match="0..65535"):
        write_labels_png(tmp_path / "negative.png", -labels)
    with pytest.raises(ValueError, match="integers"):
        write_labels_png(tmp_path / "float.png", labels * 0.5)
    with pytest.raises(ValueError, match="2D"):
        write_labels_png(tmp_path / "cube.png", np.zeros((2, 3, 4), int))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["wide.png"]  # nothing half-written left


def test_lzw_tiff_rgb_with_resolution(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    path = tmp_path / "colour.tif"
    tifffile.imwrite(
        path, rgb, photometric="rgb", compression="lzw", resolution=(10.0, 5.0), resolutionunit="CENTIMETER"
    )
    with tifffile.TiffFile(path) as tiff:
        assert tiff.pages[0].compression == 5  # really LZW
    volume = read_image(path)
    assert volume.metadata["rgb"] is True and volume.shape == (20, 24, 3)
    np.testing.assert_array_equal(volume.array, rgb)
    np.testing.assert_allclose(volume.spacing[:2], (2.0, 1.0))  # 5 px/cm in y, 10 px/cm in x


def test_grey_tiff_stack_and_16_bit(tmp_path):
    stack = np.random.default_rng(2).integers(0, 4000, (3, 10, 12), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack", compression="zlib")
    volume = read_image(tmp_path / "stack.tif")
    assert volume.shape == (3, 10, 12) and volume.metadata["rgb"] is False
    np.testing.assert_array_equal(volume.array, stack)


def test_gif_jpeg_rgba_png(tmp_path):
    grey = (np.arange(64 * 48) % 200).astype(np.uint8).reshape(64, 48)
    Image.fromarray(grey).save(tmp_path / "mask.gif")
    gif = read_image(tmp_path / "mask.gif")
    assert gif.shape == (64, 48) and not gif.metadata["rgb"]
    np.testing.assert_array_equal(gif.array, grey)

    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    png = read_image(tmp_path / "rgba.png")
    assert png.shape == (16, 16, 3) and png.metadata["rgb"]
    assert png.array[..., 0].min() == 200 and png.array[..., 1].max() == 0

    rows, columns = np.mgrid[:32, :40]
    photo = np.stack([rows * 7, columns * 5, 255 - rows * 6], axis=-1).astype(np.uint8)  # smooth ramps
    Image.fromarray(photo).save(tmp_path / "photo.jpg", dpi=(254, 254), quality=95)
    jpeg = read_image(tmp_path / "photo.jpg")
    assert jpeg.shape == (32, 40, 3) and jpeg.metadata["rgb"]
    np.testing.assert_allclose(jpeg.spacing[:2], (0.1, 0.1))
    assert np.abs(jpeg.array.astype(int) - photo).mean() < 6  # lossy, but the same picture


def test_palette_png_colours_or_indices(tmp_path):
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.save(tmp_path / "palette.png")
    colours = read_image(tmp_path / "palette.png")
    assert colours.metadata["rgb"] and colours.array[0, 1].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png", palette_indices=True).array, indices)


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFileError):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(CorruptFileError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\xff" * 12)
    with pytest.raises(CorruptFileError, match="broken.tif"):
        read_image(tmp_path / "broken.tif")


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_an_animation_is_refused_not_cut_to_its_first_frame(tmp_path, suffix, capsys):
    from napari_medimg.cli import main

    rng = np.random.default_rng(0)
    frames = [Image.fromarray((rng.random((20, 30)) * 255).astype(np.uint8)) for _ in range(3)]
    path = tmp_path / f"cine{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as image:
        assert image.n_frames == 3
    with pytest.raises(UnsupportedFileError, match="3 frames"):
        read_image(path)
    labels = tmp_path / "labels.png"
    write_labels_png(labels, np.ones((20, 30), np.uint8))
    assert (
        main(["pixels", "train", "--image", str(path), "--labels", str(labels), "--out", str(tmp_path / "m")])
        == 2
    )
    assert "3 frames" in capsys.readouterr().err
    frames[0].save(tmp_path / "still.gif")  # one frame: read as before
    assert read_image(tmp_path / "still.gif").array.shape == (20, 30)


@pytest.mark.shared_data
def test_drive_lzw_tiff_and_gif_masks(shared_data):
    drive = shared_data / "segmentation" / "drive" / "training"
    image = read_image(drive / "images" / "21_training.tif")
    assert image.shape == (584, 565, 3) and image.metadata["rgb"] and image.array.dtype == np.uint8
    assert image.metadata["spacing_assumed"]  # DRIVE's TIFFs carry a 0/1 resolution
    assert image.array[..., 1].std() > 10
    manual = read_image(drive / "1st_manual" / "21_manual1.gif")
    assert manual.shape == (584, 565) and set(np.unique(manual.array)) == {0, 255}
    assert 0.06 < (manual.array == 255).mean() < 0.14


def test_medimg_info_describes_a_raster_image(tmp_path, capsys):
    """It said "not a DICOM file" of a PNG the pixel classifier reads."""
    import json

    from napari_medimg.cli import main

    write_labels_png(tmp_path / "strokes.png", np.ones((20, 30), np.uint8), spacing=(0.5, 0.25))
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "photo.jpg")
    assert main(["info", str(tmp_path / "strokes.png"), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["series"]
    assert entry["shape"] == [20, 30] and np.allclose(entry["spacing"], [0.5, 0.25]) and not entry["warnings"]
    assert main(["info", str(tmp_path / "photo.jpg")]) == 0
    text = capsys.readouterr().out
    assert "(y,x,colour) 20 x 30 x 3" in text and "1 mm per pixel is assumed" in text
