"""A listening socket shared by Store SCP processes: each new association goes to the process
serving the fewest. Two listeners in this process stand for two processes (each its own slot)."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from openpacs.dimse import engine
from openpacs.dimse.shared_socket import SharedSocket
from openpacs.dimse.sop import VERIFICATION

IMPLICIT = "1.2.840.10008.1.2"
POLICY = engine.Policy(
    ae_title="STORESCP",
    require_called_ae=True,
    allowed_calling_aes=frozenset(),
    sop_classes=frozenset([VERIFICATION]),
    transfer_syntaxes=frozenset([IMPLICIT]),
    acse_timeout=30,
    network_timeout=60,
)
LOG = logging.getLogger("test.shared_socket")


@pytest.fixture
def shared() -> Iterator[SharedSocket]:
    listening = socket.create_server(("127.0.0.1", 0), backlog=16)
    # Patient beyond any scheduling delay: a connection goes to the idle listener, never by
    # a busy one giving up waiting for it.
    yield SharedSocket(listening, multiprocessing.get_context("spawn"), 2, patience=30)
    listening.close()


def _listener(shared: SharedSocket, slot: int) -> engine.Listener:
    mine = shared.for_slot(slot)
    mine.sock = shared.sock.dup()  # its own descriptor, as a spawned receiver gets
    listener = engine.Listener(POLICY, {}, "127.0.0.1", 0, None, "storescp", shared_socket=mine)
    listener.start()
    return listener


def _request(port: int, called_ae: str = "STORESCP") -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "calling_ae": "MODALITY",
        "called_ae": called_ae,
        "proposals": [engine.Proposal(VERIFICATION, (IMPLICIT,))],
        "log": LOG,
        "timeout": 30,
    }


@contextmanager
def _associated(port: int) -> Iterator[engine.Link]:
    link = engine.request_association(**_request(port))
    try:
        yield link
    finally:
        link.release(10)


def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _served_by(listener: engine.Listener, links: list[engine.Link]) -> list[engine.Link]:
    with listener._lock:
        ports = {association.address[1] for association in listener._associations}
    return [link for link in links if link.sock.getsockname()[1] in ports]


def _wait_for(value: Callable[[], int], expected: int) -> None:
    _wait_until(lambda: value() == expected)


def test_a_new_association_goes_to_the_process_serving_fewer(shared: SharedSocket) -> None:
    port = shared.sock.getsockname()[1]
    first, second = _listener(shared, 0), _listener(shared, 1)
    links: list[engine.Link] = []
    try:
        for count in range(1, 5):
            links.append(engine.request_association(**_request(port)))
            _wait_for(lambda: first.established() + second.established(), count)
            assert abs(first.established() - second.established()) <= 1
        # The second process's associations end: the first now serves two, the second none.
        for link in _served_by(second, links):
            link.release(10)
            links.remove(link)
        _wait_until(lambda: shared.open_connections() == [2, 0])
        # Both new ones go to the second, although the first has waited at accept() longer.
        for count in (1, 2):
            links.append(engine.request_association(**_request(port)))
            _wait_for(second.established, count)
        assert first.established() == 2
        assert shared.open_connections() == [2, 2]
    finally:
        for link in links:
            link.release(10)
        _wait_until(lambda: shared.open_connections() == [0, 0])
        first.stop(0)
        second.stop(0)


def test_a_stopped_process_neither_closes_the_socket_nor_is_waited_for(
    shared: SharedSocket,
) -> None:
    port = shared.sock.getsockname()[1]
    stopped, running = _listener(shared, 1), _listener(shared, 0)
    stopped.stop(0)
    started = time.monotonic()
    with _associated(port), _associated(port):
        _wait_for(running.established, 2)
    assert time.monotonic() - started < 10  # not the 30 s it would leave an idle process
    running.stop(0)


def test_a_busier_process_takes_the_connection_when_nobody_else_does() -> None:
    listening = socket.create_server(("127.0.0.1", 0), backlog=16)
    # The second process (slot 1) never accepts: it hangs, or it is gone.
    shared = SharedSocket(listening, multiprocessing.get_context("spawn"), 2, patience=0.2)
    port = listening.getsockname()[1]
    only = _listener(shared, 0)
    try:
        with _associated(port), _associated(port):
            _wait_until(lambda: only.established() == 2)
            assert shared.open_connections() == [2, 0]
    finally:
        only.stop(0)
        listening.close()


def test_a_refused_connection_does_not_count(shared: SharedSocket) -> None:
    port = shared.sock.getsockname()[1]
    listener = _listener(shared, 0)
    try:
        with pytest.raises(engine.Refused):
            engine.request_association(**_request(port, called_ae="SOMEONE"))
        _wait_until(lambda: shared.open_connections() == [0, 0])
    finally:
        listener.stop(0)
