"""uvicorn's access log, paths only: query strings carry patient names and IDs (QIDO-RS
`PatientName=...`, WADO-URI UIDs), which must not reach log files."""

from __future__ import annotations

import logging


class PathOnly(logging.Filter):
    """Cuts the query string off the path uvicorn logs (its args: client, method, path,
    HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def install() -> None:
    """Once per process (the logger is process-wide); later calls change nothing."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PathOnly) for f in logger.filters):
        logger.addFilter(PathOnly())
