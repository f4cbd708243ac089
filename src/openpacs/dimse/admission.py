"""Which calling AEs a listener admits: anyone, or registered nodes with a permission."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from openpacs.config import CallingAes, Permission
from openpacs.logs import get_logger
from openpacs.nodes import NodeDirectory


def admission(
    rule: CallingAes, sessions: sessionmaker[Session], *permissions: Permission, service: str
) -> Callable[[str], bool] | None:
    """None for `any`; else a check that the calling AE is a registered node holding one of
    `permissions`. An unreadable registry refuses: a closed door is the safe failure."""
    if rule is CallingAes.any:
        return None
    directory = NodeDirectory(sessions)
    log = get_logger(service)

    def admit(calling_ae: str) -> bool:
        try:
            return any(directory.permits(calling_ae, p) for p in permissions)
        except Exception as exc:  # the index unreachable, a driver error
            log.warning("cannot check calling AE %r against the node registry: %s", calling_ae, exc)
            return False

    return admit
