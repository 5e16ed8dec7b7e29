"""A pydicom decoding plugin for JPEG Lossless, 12-bit JPEG Extended and JPEG 2000 through imagecodecs.

pydicom's first choice for these syntaxes is gdcm, which fuzzing showed to **kill the whole process** on corrupt
streams: a C++ exception thrown through C (SIGABRT) on JPEG Lossless with a few header bytes missing and on
JPEG 2000 with broken marker segments, a segmentation fault on a JPEG Lossless frame header claiming a 238-bit
precision.  In napari that closes the viewer with no message.  imagecodecs (BSD-3, already a dependency for
TIFF) bundles libjpeg-turbo 3 (BSD-style), which decodes lossless JPEG of 2 to 16 bits and 12-bit lossy JPEG,
and OpenJPEG (BSD-2); both report a corrupt stream as an error, and both release the GIL, so the reader's thread
pool decodes frames on every core (pylibjpeg-openjpeg, pydicom's other JPEG 2000 plugin, holds it).  libjpeg-turbo
also makes the GPL-3 pylibjpeg-libjpeg unnecessary for 12-bit JPEG Extended.

:func:`register` adds the plugin to pydicom's decoders of :data:`SYNTAXES` (under :data:`PLUGIN`);
:func:`~napari_medimg.io.dicom.pixels.decoding_plugin` then chooses it.  The module has the three names pydicom
requires of a plugin: ``is_available``, ``DECODER_DEPENDENCIES`` and the decoding function.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = [
    "PLUGIN",
    "SYNTAXES",
    "JPEG_SYNTAXES",
    "LOSSLESS_JPEG_SYNTAXES",
    "JPEG2000_SYNTAXES",
    "is_available",
    "decode_frame",
    "register",
]

#: the plugin's label among pydicom's decoding plugins
PLUGIN = "medimg-imagecodecs"
#: JPEG Lossless (process 14) and JPEG Lossless SV1 (process 14, first-order prediction): libjpeg-turbo
LOSSLESS_JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
#: ... and JPEG Extended (processes 2 and 4; 8-bit JPEG goes to Pillow, 12-bit here)
JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.51", *LOSSLESS_JPEG_SYNTAXES)
#: JPEG 2000 lossless and lossy (Part 1): OpenJPEG
JPEG2000_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
SYNTAXES = (*JPEG_SYNTAXES, *JPEG2000_SYNTAXES)
DECODER_DEPENDENCIES = dict.fromkeys(SYNTAXES, ("imagecodecs>=2024.1",))

_registered = False
_lock = threading.Lock()


def _turbo_version() -> tuple[int, ...]:
    """libjpeg-turbo's version in imagecodecs' JPEG 8 codec, () when it is missing or not libjpeg-turbo."""
    try:
        import imagecodecs

        if not imagecodecs.JPEG8.available:
            return ()
        text = imagecodecs.jpeg8_version()  # e.g. "libjpeg_turbo 3.1.3/8.0"
    except Exception:  # noqa: BLE001 - an imagecodecs without this codec: the plugin is unavailable
        return ()
    name, _, number = text.partition(" ")
    if "turbo" not in name:
        return ()
    try:
        return tuple(int(part) for part in number.split("/")[0].split("."))
    except ValueError:
        return ()


def _openjpeg_available() -> bool:
    try:
        import imagecodecs

        return bool(imagecodecs.JPEG2K.available)
    except Exception:  # noqa: BLE001 - an imagecodecs without this codec: the plugin is unavailable
        return False


def is_available(syntax: str) -> bool:
    """Whether the plugin decodes ``syntax`` here.

    Parameters
    ----------
    syntax : str
        A TransferSyntaxUID.

    Returns
    -------
    bool
        True for :data:`JPEG_SYNTAXES` when imagecodecs has libjpeg-turbo 3 or later (lossless and 12-bit
        support), for :data:`JPEG2000_SYNTAXES` when it has OpenJPEG.
    """
    if syntax in JPEG_SYNTAXES:
        return _turbo_version() >= (3,)
    return syntax in JPEG2000_SYNTAXES and _openjpeg_available()


def decode_frame(src: bytes, runner) -> bytes:
    """One encoded frame decoded to the bytes pydicom's decoder expects (pixels interleaved, C order).

    Parameters
    ----------
    src : bytes
        One JPEG or JPEG 2000 codestream.
    runner : pydicom.pixels.decoders.base.DecodeRunner
        pydicom's description of the frame (transfer syntax, rows, columns, samples per pixel, photometric
        interpretation); the container size and the sample layout of what is returned are set on it.

    Returns
    -------
    bytes
        The decoded samples in a container of 1, 2 or 4 bytes set by the precision (little endian), as pydicom's
        other plugins return them; JPEG 2000's signedness is corrected by pydicom from the codestream.

    Raises
    ------
    ValueError
        When the stream is corrupt or decodes to another size than the dataset declares.
    """
    import imagecodecs

    jpeg2000 = runner.transfer_syntax in JPEG2000_SYNTAXES
    try:
        # numthreads=1: the reader's thread pool decodes frames in parallel
        array = imagecodecs.jpeg2k_decode(src, numthreads=1) if jpeg2000 else imagecodecs.jpeg8_decode(src)
    except (imagecodecs.Jpeg8Error, imagecodecs.Jpeg2kError) as error:
        raise ValueError(str(error)) from error
    samples = runner.samples_per_pixel
    expected = (runner.rows, runner.columns) + ((samples,) if samples > 1 else ())
    if array.shape != expected:
        raise ValueError(f"the stream decodes to {array.shape} samples, the dataset declares {expected}")
    if samples > 1:
        runner.set_option("planar_configuration", 0)  # both return colour by pixel
        if jpeg2000 and runner.photometric_interpretation in ("YBR_ICT", "YBR_RCT"):
            runner.set_option("photometric_interpretation", "RGB")  # OpenJPEG undoes the colour transform
    runner.set_option("bits_allocated", 8 * array.dtype.itemsize)  # the container follows the precision
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def register() -> None:
    """Add the plugin to pydicom's decoders of :data:`SYNTAXES` (once; thread-safe)."""
    global _registered
    import pydicom

    with _lock:
        if not _registered:
            for syntax in SYNTAXES:
                decoder = pydicom.pixels.get_decoder(syntax)
                if PLUGIN not in decoder.available_plugins:
                    decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
            _registered = True
