"""Is a listener up? Asked of the operating system, not of a flag: connect to its port."""

from __future__ import annotations

import socket
from dataclasses import dataclass

# Connecting to "every interface" means connecting to this machine.
_ANY = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Reachability:
    up: bool
    detail: str  # "accepting connections", or why not (refused, timed out, ...)


def probe(host: str, port: int, timeout: float = 1.0) -> Reachability:
    """Open a TCP connection to (host, port) and close it at once. Our DIMSE listeners drop a
    connection that sends nothing without a log line; HTTP servers do the same."""
    target = _ANY.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return Reachability(True, "accepting connections")
    except ConnectionRefusedError:
        return Reachability(False, f"nothing listens on {target}:{port} (connection refused)")
    except TimeoutError:
        return Reachability(False, f"{target}:{port} did not answer within {timeout:g} s")
    except OSError as exc:
        return Reachability(False, f"cannot connect to {target}:{port}: {exc.strerror or exc}")
