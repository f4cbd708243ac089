"""Local DICOM files as the sender takes them (`openpacs send` of files and folders)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from openpacs.dicom.uids import InvalidUID, check_uid


@dataclass(frozen=True)
class LocalFile:
    """A Part-10 file on disk: what `sender.Sendable` needs."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path


@dataclass
class LocalFiles:
    files: list[LocalFile] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file -> why it is not sent


def read_local(paths: Iterable[Path]) -> LocalFiles:
    """The sendable files among `paths` (headers only); the others with the reason."""
    found = LocalFiles()
    for path in paths:
        if path.name.upper() == "DICOMDIR":
            found.rejected[str(path)] = "a media directory (DICOMDIR), not an object; skipped"
            continue
        try:
            # The meta header holds all we need; never the pixel data.
            meta = dcmread(path, stop_before_pixels=True, specific_tags=[]).file_meta
            found.files.append(
                LocalFile(
                    sop_instance_uid=check_uid(
                        meta.get("MediaStorageSOPInstanceUID"), "MediaStorageSOPInstanceUID"
                    ),
                    sop_class_uid=check_uid(
                        meta.get("MediaStorageSOPClassUID"), "MediaStorageSOPClassUID"
                    ),
                    transfer_syntax_uid=check_uid(
                        meta.get("TransferSyntaxUID"), "TransferSyntaxUID"
                    ),
                    path=path,
                )
            )
        except InvalidDicomError:
            found.rejected[str(path)] = "not a DICOM file (no DICM preamble and file meta)"
        except InvalidUID as exc:
            found.rejected[str(path)] = f"unusable file meta: {exc}"
        except OSError as exc:
            found.rejected[str(path)] = f"cannot read it: {exc.strerror or exc}"
    return found
