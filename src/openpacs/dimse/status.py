"""The one table from core outcomes and errors to DIMSE status codes (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from pydicom import Dataset

from openpacs.archive import errors
from openpacs.printing import errors as print_errors

SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124  # general status (PS3.7 C.5): the requestor may not do this
DUPLICATE_SOP_INSTANCE = 0x0111
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000

# Most specific first: the first matching class wins.
STORE_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (errors.DuplicateRefused, DUPLICATE_SOP_INSTANCE),
    (errors.InvalidAttribute, DATASET_DOES_NOT_MATCH),
    (errors.InvalidInstance, CANNOT_UNDERSTAND),
    (errors.StorageUnavailable, OUT_OF_RESOURCES),
    (errors.IndexUnavailable, OUT_OF_RESOURCES),
)


def status_for(exc: Exception) -> int:
    for kind, code in STORE_STATUS:
        if isinstance(exc, kind):
            return code
    return CANNOT_UNDERSTAND


def status_dataset(code: int, comment: str | None = None) -> Dataset:
    """A status with an ErrorComment (LO: 64 characters of the default repertoire at most)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ascii_comment = comment.encode("ascii", "replace").decode("ascii")
        ds.ErrorComment = ascii_comment[:64]
    return ds


# Query/Retrieve (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4).
PENDING = 0xFF00
PENDING_WITH_WARNING = 0xFF01  # optional keys not supported for matching
CANCEL = 0xFE00
UNABLE_TO_CALCULATE_MATCHES = 0xA701
UNABLE_TO_PERFORM_SUBOPERATIONS = 0xA702
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_WARNING = 0xB000
UNABLE_TO_PROCESS = 0xC000

QUERY_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (errors.InvalidQuery, DATASET_DOES_NOT_MATCH),
    (errors.IndexUnavailable, OUT_OF_RESOURCES),
)


def query_status_for(exc: Exception) -> int:
    for kind, code in QUERY_STATUS:
        if isinstance(exc, kind):
            return code
    return UNABLE_TO_PROCESS


# N-service statuses (PS3.7 C.4) and the print-specific ones (PS3.4 H.4.1.2.4, H.4.2.2.4).
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
NO_SUCH_SOP_CLASS = 0x0118
CLASS_INSTANCE_CONFLICT = 0x0119
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION_TYPE = 0x0123
UNRECOGNIZED_OPERATION = 0x0211
RESOURCE_LIMITATION = 0x0213
EMPTY_FILM_SESSION = 0xB602  # warning: a film without images printed as an empty page
EMPTY_FILM_BOX = 0xB603  # warning: the same for one film box
NO_FILM_BOX = 0xC600  # the film session holds no film box
IMAGE_TOO_LARGE = 0xC603

PRINT_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (print_errors.NoSuchInstance, NO_SUCH_OBJECT_INSTANCE),
    (print_errors.DuplicateInstance, DUPLICATE_SOP_INSTANCE),
    (print_errors.ClassInstanceConflict, CLASS_INSTANCE_CONFLICT),
    (print_errors.NotSettable, NO_SUCH_ATTRIBUTE),
    (print_errors.MissingValue, MISSING_ATTRIBUTE),
    (print_errors.ImageTooLarge, IMAGE_TOO_LARGE),
    (print_errors.InvalidValue, INVALID_ATTRIBUTE_VALUE),
    (print_errors.UnsupportedOperation, UNRECOGNIZED_OPERATION),
    (print_errors.NoSuchAction, NO_SUCH_ACTION_TYPE),
    (print_errors.ResourceLimit, RESOURCE_LIMITATION),
    (print_errors.NothingToPrint, NO_FILM_BOX),
    (print_errors.PrintFailed, PROCESSING_FAILURE),
)


def print_status_for(exc: Exception) -> int:
    for kind, code in PRINT_STATUS:
        if isinstance(exc, kind):
            return code
    return PROCESSING_FAILURE
