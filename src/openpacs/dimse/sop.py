"""The SOP classes and transfer syntaxes our DIMSE services offer."""

from __future__ import annotations

from pydicom.uid import AllTransferSyntaxes
from pynetdicom.sop_class import _STORAGE_CLASSES

VERIFICATION = "1.2.840.10008.1.1"

# Query/Retrieve information models (PS3.4 C.6).
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

# The models by the name a command line or a job uses: (find, move, get).
QR_MODELS = {
    "study": (STUDY_ROOT_FIND, STUDY_ROOT_MOVE, STUDY_ROOT_GET),
    "patient": (PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET),
}

# Every syntax a modality may send, stored as received: uncompressed, deflated, the JPEG family,
# JPEG-LS, JPEG 2000, HTJ2K, RLE and the video syntaxes.
STORE_TRANSFER_SYNTAXES: list[str] = [str(uid) for uid in AllTransferSyntaxes]


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows."""
    return sorted(str(uid) for uid in _STORAGE_CLASSES.values())
