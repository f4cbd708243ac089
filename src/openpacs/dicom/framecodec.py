"""One frame in another encoding: what a frame retrieval sends when the stored encoding is not
the one asked for (WADO-RS `/frames` with `application/octet-stream` or `image/jls`, say).

Only the frame asked for is read and decoded (`openpacs.dicom.frames`), then encoded on its own
by the same encoders `openpacs.dicom.codecs` uses for whole objects, so a frame of a 2000-frame
object costs one frame's work.

Decoded colour frames are given as RGB, pixel-interleaved: the decoders undo YBR and component
transforms, and this is the form every encoder takes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from openpacs.dicom import codecs, frames
from openpacs.dicom.frames import FrameError, PixelDescription

__all__ = ["encode_frame", "native_frame"]


def native_frame(path: str, index: int) -> tuple[PixelDescription, bytes]:
    """Frame `index` (0-based) as native little endian bytes, and what those bytes hold.

    Raises FrameError when there is no such frame or it cannot be decoded."""
    try:
        header = dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise FrameError(f"not a readable DICOM file: {exc}") from exc
    syntax = str(header.file_meta.get("TransferSyntaxUID") or "")
    pixels = PixelDescription.from_dataset(header, syntax)
    if syntax in (codecs.IMPLICIT_VR_LE, codecs.EXPLICIT_VR_LE, codecs.DEFLATED_VR_LE):
        native = dataclasses.replace(pixels, transfer_syntax_uid=codecs.EXPLICIT_VR_LE)
        return dataclasses.replace(native, number_of_frames=1), frames.read_frame(path, index)
    colour = pixels.samples_per_pixel > 1
    array = frames.decode_frame(path, index, as_rgb=colour)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    described = dataclasses.replace(
        pixels,
        transfer_syntax_uid=codecs.EXPLICIT_VR_LE,
        photometric_interpretation="RGB" if colour else pixels.photometric_interpretation,
        planar_configuration=0,
        number_of_frames=1,
    )
    return described, np.ascontiguousarray(little).tobytes()


def encode_frame(
    pixels: PixelDescription,
    native: bytes,
    target: str,
    *,
    allow_lossy: bool = False,
    quality: int | None = None,
) -> bytes:
    """One native frame (as `native_frame` gives it) encoded in the compressed `target`: the
    bare codestream, no encapsulation items. Raises `codecs.TranscodeError` when `target`
    cannot hold it or no encoder is installed (and for lossy targets without allow_lossy)."""
    if target in codecs.NATIVE:
        return native
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(codecs.EXPLICIT_VR_LE)
    ds.Rows = pixels.rows
    ds.Columns = pixels.columns
    ds.SamplesPerPixel = pixels.samples_per_pixel
    ds.BitsAllocated = pixels.bits_allocated
    ds.BitsStored = pixels.bits_stored
    ds.HighBit = pixels.bits_stored - 1
    ds.PixelRepresentation = pixels.pixel_representation
    ds.PhotometricInterpretation = pixels.photometric_interpretation
    if pixels.samples_per_pixel > 1:
        ds.PlanarConfiguration = pixels.planar_configuration
    ds.add_new(0x7FE00010, "OW" if pixels.bits_allocated > 8 else "OB", native)
    encoded = codecs.transcode(ds, target, allow_lossy=allow_lossy, quality=quality)
    return next(generate_frames(encoded.PixelData, number_of_frames=1))
