"""The one table from core outcomes and errors to DIMSE status codes (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from pydicom import Dataset

from openpacs.archive import errors

SUCCESS = 0x0000
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
