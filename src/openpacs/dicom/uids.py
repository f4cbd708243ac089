"""UID rules (PS3.5 9.1). Storage paths are built only from values that pass `check_uid`."""

from __future__ import annotations

import re

from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from openpacs import __version__

MAX_UID_LENGTH = 64
# Who wrote a file or speaks on an association (file meta, A-ASSOCIATE user information):
# derived from a fixed seed, so every openpacs names itself the same way.
IMPLEMENTATION_CLASS_UID = generate_uid(PYDICOM_ROOT_UID, entropy_srcs=["openpacs"])
IMPLEMENTATION_VERSION = f"OPENPACS_{__version__}"[:16]
# Components are digits separated by single dots. Leading zeros are invalid by the standard but
# real modalities send them, and they are harmless in a path, so they are accepted.
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")


class InvalidUID(ValueError):
    """A UID that is missing, too long or carries characters a UID may not have."""


def check_uid(value: object, keyword: str) -> str:
    """The UID with its NUL/space padding removed, or InvalidUID naming the attribute."""
    if value is None:
        raise InvalidUID(f"{keyword} is missing")
    text = str(value).rstrip("\0 ")
    if not text:
        raise InvalidUID(f"{keyword} is empty")
    if len(text) > MAX_UID_LENGTH:
        raise InvalidUID(f"{keyword} is {len(text)} characters long; a UID has at most 64")
    if not _UID.fullmatch(text):
        shown = text if text.isprintable() else text.encode("unicode_escape").decode()
        raise InvalidUID(f"{keyword} {shown[:80]!r} is not a UID (digits and single dots only)")
    return text
