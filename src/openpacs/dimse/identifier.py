"""Q/R identifiers on the wire: pydicom datasets encoded in a presentation context's syntax."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from openpacs.dicom import codecs

# Identifiers are decoded by pydicom: the uncompressed syntaxes it reads without inflating.
IDENTIFIER_SYNTAXES = (codecs.IMPLICIT_VR_LE, codecs.EXPLICIT_VR_LE, codecs.EXPLICIT_VR_BE)


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    return read_dataset(
        BytesIO(data),
        is_implicit_VR=transfer_syntax == codecs.IMPLICIT_VR_LE,
        is_little_endian=transfer_syntax != codecs.EXPLICIT_VR_BE,
    )


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    out = DicomBytesIO()
    out.is_implicit_VR = transfer_syntax == codecs.IMPLICIT_VR_LE
    out.is_little_endian = transfer_syntax != codecs.EXPLICIT_VR_BE
    write_dataset(out, ds)
    return out.getvalue()
