"""The association registry: lists, counts, and counts shared with receiver processes."""

from __future__ import annotations

import multiprocessing

from openpacs.monitoring.associations import Associations, SharedCounts, Totals


def test_open_recent_and_counts() -> None:
    monitor = Associations(recent=2)
    first = monitor.accepted("storescp", "CT1", "STORESCP", "10.0.0.5:4000")
    monitor.served(first, "storescp", 0x0001, 0.0)
    monitor.served(first, "storescp", 0x0001, 0.0)
    monitor.rejected("qrscp", "WS", "WRONG", "10.0.0.6:4000", "called AE 'WRONG' is not 'QRSCP'")
    snapshot = monitor.snapshot()
    (opened,) = snapshot.open
    assert (opened.calling_ae, opened.requests, opened.ended_at) == ("CT1", 2, None)
    assert snapshot.totals["storescp"] == Totals(open=1, accepted=1, rejected=0)
    assert snapshot.totals["qrscp"] == Totals(open=0, accepted=0, rejected=1)
    monitor.ended(first, "released")
    monitor.ended(first, "released")  # told twice: counted once
    second = monitor.accepted("storescp", "CT2", "STORESCP", "10.0.0.7:4000")
    monitor.ended(second, "peer gone")
    snapshot = monitor.snapshot()
    assert snapshot.open == []
    # Newest first, at most `recent`.
    assert [(a.calling_ae, a.outcome) for a in snapshot.recent] == [
        ("CT2", "peer gone"),
        ("CT1", "released"),
    ]
    assert snapshot.totals["storescp"] == Totals(open=0, accepted=2, rejected=0)


def test_receivers_counts_add_to_the_main_process() -> None:
    shared = SharedCounts(multiprocessing.get_context("spawn"))
    main = Associations(shared=shared)
    receiver = Associations(shared=shared, publish=True)
    main.accepted("storescp", "A", "STORESCP", "p:1")
    held = receiver.accepted("storescp", "B", "STORESCP", "p:2")
    receiver.accepted("storescp", "C", "STORESCP", "p:3")
    receiver.rejected("storescp", "D", "X", "p:4", "no")
    receiver.ended(held, "released")
    snapshot = main.snapshot()
    assert snapshot.totals["storescp"] == Totals(open=2, accepted=3, rejected=1)
    assert snapshot.in_receivers["storescp"] == 1
    assert [a.calling_ae for a in snapshot.open] == ["A"]  # only this process's are listed
