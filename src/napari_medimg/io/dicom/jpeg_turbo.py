"""A pydicom decoding plugin for JPEG Lossless and 12-bit JPEG Extended through libjpeg-turbo (imagecodecs).

pydicom's only permissive decoder of these syntaxes is gdcm, which fuzzing showed to **kill the whole
process** on corrupt JPEG Lossless streams: a C++ exception thrown through C (SIGABRT) on a few missing header
bytes, a segmentation fault on a frame header claiming a 238-bit precision.  In napari that closes the viewer
with no message.  libjpeg-turbo 3 (BSD-style licences), bundled with imagecodecs (BSD-3, already a dependency
for TIFF), decodes lossless JPEG of 2 to 16 bits and 12-bit lossy JPEG, and reports a corrupt stream as an
error.  It also makes the GPL-3 pylibjpeg-libjpeg unnecessary for 12-bit JPEG Extended.

:func:`register` adds the plugin to pydicom's decoders of those syntaxes (under :data:`PLUGIN`);
:func:`~napari_medimg.io.dicom.pixels.decoding_plugin` then chooses it.  The module has the three names pydicom
requires of a plugin: ``is_available``, ``DECODER_DEPENDENCIES`` and the decoding function.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["PLUGIN", "SYNTAXES", "LOSSLESS_SYNTAXES", "is_available", "decode_frame", "register"]

#: the plugin's label among pydicom's decoding plugins
PLUGIN = "libjpeg-turbo"
#: JPEG Extended (processes 2 and 4), JPEG Lossless (process 14) and JPEG Lossless SV1 (process 14,
#: first-order prediction)
LOSSLESS_SYNTAXES = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
SYNTAXES = ("1.2.840.10008.1.2.4.51", *LOSSLESS_SYNTAXES)
DECODER_DEPENDENCIES = dict.fromkeys(SYNTAXES, ("imagecodecs>=2024.1 (with libjpeg-turbo 3)",))

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


def is_available(syntax: str) -> bool:
    """Whether the plugin decodes ``syntax`` here: libjpeg-turbo 3 or later (lossless and 12-bit support).

    Parameters
    ----------
    syntax : str
        A TransferSyntaxUID.

    Returns
    -------
    bool
        True when ``syntax`` is one of :data:`SYNTAXES` and imagecodecs has libjpeg-turbo 3 or later.
    """
    return syntax in SYNTAXES and _turbo_version() >= (3,)


def decode_frame(src: bytes, runner) -> bytes:
    """One encoded frame decoded to the bytes pydicom's decoder expects (pixels interleaved, C order).

    Parameters
    ----------
    src : bytes
        One JPEG codestream.
    runner : pydicom.pixels.decoders.base.DecodeRunner
        pydicom's description of the frame (rows, columns, samples per pixel, bits allocated).

    Returns
    -------
    bytes
        The decoded samples: one byte each for a precision of at most 8 bits, else two (little endian).

    Raises
    ------
    ValueError
        When the stream is corrupt or decodes to another size than the dataset declares.
    """
    import imagecodecs

    try:
        array = imagecodecs.jpeg8_decode(src)
    except imagecodecs.Jpeg8Error as error:
        raise ValueError(str(error)) from error
    samples = runner.samples_per_pixel
    expected = (runner.rows, runner.columns) + ((samples,) if samples > 1 else ())
    if array.shape != expected:
        raise ValueError(f"the JPEG stream decodes to {array.shape} samples, the dataset declares {expected}")
    if samples > 1:
        runner.set_option("planar_configuration", 0)  # libjpeg-turbo returns colour by pixel
    runner.set_option("bits_allocated", 8 * array.dtype.itemsize)  # its container follows the precision
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def register() -> bool:
    """Add the plugin to pydicom's decoders of :data:`SYNTAXES` (once; thread-safe).

    Returns
    -------
    bool
        Whether the plugin is available (libjpeg-turbo 3 found).
    """
    global _registered
    import pydicom

    with _lock:
        if not _registered:
            for syntax in SYNTAXES:
                decoder = pydicom.pixels.get_decoder(syntax)
                if PLUGIN not in decoder.available_plugins:
                    decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
            _registered = True
    return is_available(SYNTAXES[0])
