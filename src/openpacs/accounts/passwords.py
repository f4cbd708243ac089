"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from openpacs.accounts.errors import WeakPassword

# argon2-cffi's defaults: argon2id with RFC 9106's low-memory parameters (64 MiB, 3 passes).
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_rules(password: str, username: str, min_length: int, old: str | None = None) -> None:
    """Raises WeakPassword naming the rule `password` breaks; `old` is the current password."""
    if len(password) < min_length:
        raise WeakPassword(f"the password needs at least {min_length} characters")
    if password.strip().casefold() == username.strip().casefold():
        raise WeakPassword("the password may not be the user name")
    if old is not None and password == old:
        raise WeakPassword("the new password must differ from the current one")


class VerifiedCache:
    """Passwords verified lately, so HTTP Basic (a viewer's hundreds of requests) pays for
    argon2 once, not per request. Keys are SHA-256 of the stored hash and the password: no
    password is kept, and a changed password (a new stored hash) never matches an old entry."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(password_hash: str, password: str) -> bytes:
        return hashlib.sha256(f"{password_hash}\0{password}".encode()).digest()

    def verify(self, password_hash: str, password: str) -> bool:
        key = self._key(password_hash, password)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
        if not verify(password_hash, password):
            return False
        with self._lock:
            self._seen[key] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return True
