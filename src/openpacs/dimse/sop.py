"""The SOP classes and transfer syntaxes our DIMSE services offer."""

from __future__ import annotations

from pydicom.uid import AllTransferSyntaxes
from pynetdicom.sop_class import _STORAGE_CLASSES

VERIFICATION = "1.2.840.10008.1.1"

# Every syntax a modality may send, stored as received: uncompressed, deflated, the JPEG family,
# JPEG-LS, JPEG 2000, HTJ2K, RLE and the video syntaxes.
STORE_TRANSFER_SYNTAXES: list[str] = [str(uid) for uid in AllTransferSyntaxes]


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows."""
    return sorted(str(uid) for uid in _STORAGE_CLASSES.values())
