"""A listening socket shared by the Store SCP's processes, each new association going to the
process that serves the fewest.

Every process waits on the one socket. Left to the kernel, a connection goes to whichever
acceptor is waiting first, and a process still busy starting the thread of its last association
comes back later than an idle one, or sooner: four parallel associations over two processes
landed 3 and 1 in three runs of eight (`bench/ingest.py`), and then three associations share
one process's interpreter lock, one core, while the other process idles. So an acceptor that
serves more associations than another process leaves a waiting connection to the less busy one
for a moment, and takes it itself only if nobody else does (a busy or stopped process must not
leave connections waiting).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

# How long a busier process leaves a waiting connection to a less busy one.
PATIENCE = 0.1
_STEP = 0.001  # how often it looks again meanwhile
# select()'s timeout while nothing waits: a stopped listener's acceptor notices within it.
_IDLE_WAKE = 1.0
RETIRED = 1 << 30  # the count of a process that stopped accepting


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether a connection waits, within `timeout` seconds. OSError once `sock` is closed."""
    fd = sock.fileno()  # looked up each time: a closed socket's number may be reused
    if fd < 0:
        raise OSError("listening socket closed")
    if hasattr(select, "poll"):  # select() cannot watch descriptors numbered 1024 and up
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    return bool(select.select([fd], [], [], timeout)[0])  # Windows


class SharedSocket:
    """The listening socket and the number of connections each process has open on it, in
    shared memory. Made in the main process (slot 0) with the multiprocessing context that
    starts the receivers; each receiver takes its own `slot`."""

    def __init__(
        self,
        sock: socket.socket,
        context: Any,
        processes: int,
        *,
        patience: float = PATIENCE,
    ) -> None:
        # Non-blocking, for every process at once (the flag belongs to the shared open file):
        # a connection another process took must not leave this one blocked in accept().
        sock.setblocking(False)
        self.sock = sock
        self.patience = patience
        self.slot = 0
        self._open = context.Array("i", processes, lock=False)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]  # per process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def for_slot(self, slot: int) -> SharedSocket:
        """The same socket and counts, as seen by process number `slot`."""
        other = object.__new__(SharedSocket)
        other.__setstate__({**self.__getstate__(), "slot": slot})
        return other

    def open_connections(self) -> list[int]:
        """Connections open per process, main process first."""
        return list(self._open)

    def accept(self) -> tuple[socket.socket, Any]:
        """The next connection for this process (blocking). Raises OSError once the socket is
        closed."""
        deferred_since: float | None = None
        while True:
            if not _readable(self.sock, _IDLE_WAKE):
                deferred_since = None
                continue
            if not self._least_busy():
                now = time.monotonic()
                deferred_since = deferred_since or now
                if now - deferred_since < self.patience:
                    time.sleep(_STEP)
                    continue
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:  # another process took it
                deferred_since = None
                continue
            connection.setblocking(True)
            self._add(1)
            return connection, address

    def closed(self) -> None:
        """A connection this process accepted has ended."""
        self._add(-1)

    def retire(self) -> None:
        """This process accepts no more: the others stop leaving connections to it. (One that
        dies without retiring costs the others `patience` per connection they take while
        busier than it was.)"""
        with self._lock:
            self._open[self.slot] = RETIRED

    def _least_busy(self) -> bool:
        counts = self._open
        mine = counts[self.slot]
        return all(mine <= other for other in counts)

    def _add(self, amount: int) -> None:
        with self._lock:  # this process's threads; only this process writes its slot
            self._open[self.slot] += amount
