"""The job engine against a real index (SQLite, and PostgreSQL when configured).

Handlers here are test doubles; the DIMSE job kinds register the same way. Most tests drive the
runner one job at a time (`run_next`) with a settable clock; the thread tests wait for states,
never for durations.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from openpacs import jobs
from openpacs.archive import db
from openpacs.archive.core import Core
from openpacs.archive.models import Job
from openpacs.config import JobsSettings
from openpacs.jobs import JobContext, JobRunner, JobState

REPO = Path(__file__).resolve().parents[2]
WAIT = 20.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def make_runner(
    core: Core,
    handlers: dict[str, Callable[[dict[str, Any], JobContext], None]],
    *,
    clock: Callable[[], dt.datetime] = jobs.repository.now,
    lock: db.WriteLock | db.NoLock | None = None,
    **settings: Any,
) -> JobRunner:
    values: dict[str, Any] = {"workers": 1, "backoff_seconds": 0, "poll_seconds": 0.05}
    runner = JobRunner(
        core.sessions,
        lock or core.write_lock,
        JobsSettings.model_validate({**values, **settings}),
        clock=clock,
    )
    for kind, handler in handlers.items():
        runner.register(kind, handler)
    return runner


def read(core: Core, job_id: int) -> Job:
    with core.sessions() as session:
        return jobs.get(session, job_id)


def wait_for(core: Core, job_id: int, check: Callable[[Job], bool]) -> Job:
    """Poll the job until `check` holds; fail (not hang) when it never does."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = read(core, job_id)
        if check(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never got there: {job.state}, done {job.done}")


@pytest.fixture
def started() -> Iterator[list[JobRunner]]:
    """Runners started by a test, stopped at its end whatever happens."""
    runners: list[JobRunner] = []
    yield runners
    for runner in runners:
        runner.stop(5)


# --- outcomes --------------------------------------------------------------------------------


def copy_items(parameters: dict[str, Any], context: JobContext) -> None:
    """Handle each item of parameters['items']; the ones starting with 'bad' fail."""
    items = parameters["items"]
    context.set_total(len(items))
    for item in items:
        context.check_cancelled()
        if item.startswith("bad"):
            context.add_failure(item, f"peer refused {item} (0xA700)")
        else:
            context.add_done()
    context.save_checkpoint({"last": items[-1] if items else None})


def test_a_job_runs_reports_progress_and_succeeds(core: Core) -> None:
    runner = make_runner(core, {"copy": copy_items})
    job_id = runner.submit("copy", {"items": ["1.2.3", "1.2.4", "1.2.5"]})
    assert read(core, job_id).state == JobState.queued
    assert runner.run_next() == job_id
    job = read(core, job_id)
    assert job.state == JobState.succeeded
    assert (job.total, job.done, job.failed, job.attempts) == (3, 3, 0, 1)
    assert job.checkpoint == {"last": "1.2.5"}
    assert job.error is None and job.parameters == {"items": ["1.2.3", "1.2.4", "1.2.5"]}
    assert job.created_at <= job.started_at <= job.finished_at  # type: ignore[operator]
    assert runner.run_next() is None


def test_failed_items_make_a_job_partly_failed_or_failed(core: Core) -> None:
    runner = make_runner(core, {"copy": copy_items})
    partly = runner.submit("copy", {"items": ["ok1", "bad1", "ok2", "bad2"]})
    failed = runner.submit("copy", {"items": ["bad3"]})
    assert runner.run_next() == partly and runner.run_next() == failed

    job = read(core, partly)
    assert job.state == JobState.partly_failed
    assert (job.total, job.done, job.failed) == (4, 2, 2)
    assert job.error == "2 of 4 items failed"
    with core.sessions() as session:
        failures = jobs.failures(session, partly)
    assert [(f.item, f.reason) for f in failures] == [
        ("bad1", "peer refused bad1 (0xA700)"),
        ("bad2", "peer refused bad2 (0xA700)"),
    ]
    job = read(core, failed)
    assert job.state == JobState.failed and "every item failed (1)" in (job.error or "")


def test_transient_failures_are_retried_with_doubling_backoff_then_given_up(core: Core) -> None:
    clock = Clock()

    def busy(parameters: dict[str, Any], context: JobContext) -> None:
        raise jobs.Transient("peer busy (association rejected, transient)")

    runner = make_runner(core, {"send": busy}, clock=clock, backoff_seconds=30, max_attempts=3)
    job_id = runner.submit("send", {})
    runner.run_next()
    job = read(core, job_id)
    assert job.state == JobState.queued and job.attempts == 1
    assert job.next_attempt_at == clock.now + dt.timedelta(seconds=30)
    assert job.error == "attempt 1 failed, retrying in 30 s: Transient: peer busy " + (
        "(association rejected, transient)"
    )
    assert runner.run_next() is None  # not due yet

    clock.advance(30)
    assert runner.run_next() == job_id
    job = read(core, job_id)
    assert job.attempts == 2 and job.next_attempt_at == clock.now + dt.timedelta(seconds=60)

    clock.advance(60)
    assert runner.run_next() == job_id
    job = read(core, job_id)
    assert job.state == JobState.failed and job.attempts == 3
    assert (job.error or "").startswith("gave up after 3 attempts: Transient: peer busy")
    assert job.finished_at == clock.now


def test_network_errors_are_transient_and_the_checkpoint_carries_over(core: Core) -> None:
    seen: list[tuple[int, dict[str, Any] | None]] = []

    def flaky(parameters: dict[str, Any], context: JobContext) -> None:
        seen.append((context.attempt, context.checkpoint))
        if context.attempt == 1:
            context.save_checkpoint({"sent": ["1.2.3"]})
            raise ConnectionRefusedError(111, "Connection refused")
        context.add_done()

    runner = make_runner(core, {"send": flaky})
    job_id = runner.submit("send", {})
    runner.run_next()
    assert read(core, job_id).state == JobState.queued
    runner.run_next()
    assert read(core, job_id).state == JobState.succeeded
    assert seen == [(1, None), (2, {"sent": ["1.2.3"]})]


def test_an_unexpected_error_fails_the_job_at_once(core: Core) -> None:
    def broken(parameters: dict[str, Any], context: JobContext) -> None:
        raise KeyError("study")

    runner = make_runner(core, {"send": broken}, max_attempts=5)
    job_id = runner.submit("send", {})
    runner.run_next()
    job = read(core, job_id)
    assert job.state == JobState.failed and job.attempts == 1
    assert job.error == "KeyError: 'study'"


def test_parameters_must_be_json_and_kinds_registered(core: Core) -> None:
    runner = make_runner(core, {"copy": copy_items})
    with pytest.raises(ValueError, match="must be JSON"):
        runner.submit("copy", {"when": dt.date(2030, 1, 1)})
    with pytest.raises(ValueError, match=r"no handler for job kind 'move' \(registered: copy\)"):
        runner.submit("move", {})
    with pytest.raises(ValueError, match="registered already"):
        runner.register("copy", copy_items)


def test_jobs_of_kinds_without_a_handler_here_are_left_for_others(core: Core) -> None:
    with core.writing() as session:
        job_id = jobs.create(session, "print", {}).id
    runner = make_runner(core, {"copy": copy_items})
    assert runner.run_next() is None
    assert read(core, job_id).state == JobState.queued


# --- cancel and retry ------------------------------------------------------------------------


def test_cancel_a_queued_job_and_what_cannot_be_cancelled(core: Core) -> None:
    runner = make_runner(core, {"copy": copy_items})
    queued = runner.submit("copy", {"items": ["a"]})
    finished = runner.submit("copy", {"items": ["b"]})
    with core.writing() as session:
        job = jobs.cancel(session, queued)
        assert job.state == JobState.cancelled and job.finished_at is not None
    assert runner.run_next() == finished  # the cancelled one is skipped
    with core.writing() as session, pytest.raises(jobs.JobConflict, match="succeeded already"):
        jobs.cancel(session, finished)
    with core.writing() as session, pytest.raises(jobs.JobNotFound, match="no job 999"):
        jobs.cancel(session, 999)


def test_cancel_a_running_job_stops_it_between_items(core: Core, started: list[JobRunner]) -> None:
    def endless(parameters: dict[str, Any], context: JobContext) -> None:
        context.set_total(100_000)
        for _ in range(100_000):
            context.check_cancelled()
            context.add_done()
            time.sleep(0.001)

    runner = make_runner(core, {"copy": endless})
    started.append(runner)
    job_id = runner.submit("copy", {})
    runner.start()
    wait_for(core, job_id, lambda job: job.state == JobState.running and job.done > 0)
    with core.writing() as session:
        assert jobs.cancel(session, job_id).state == JobState.running  # flagged, still running
    job = wait_for(core, job_id, lambda job: job.state == JobState.cancelled)
    assert 0 < job.done < job.total and job.finished_at is not None


def test_retry_a_failed_job_with_fresh_attempts(core: Core) -> None:
    calls: list[int] = []

    def fails_once(parameters: dict[str, Any], context: JobContext) -> None:
        calls.append(context.attempt)
        if len(calls) == 1:
            raise RuntimeError("destination unknown")
        context.add_done()

    runner = make_runner(core, {"send": fails_once})
    job_id = runner.submit("send", {})
    runner.run_next()
    assert read(core, job_id).state == JobState.failed
    with core.writing() as session:
        job = jobs.retry(session, job_id)
        assert (job.state, job.attempts, job.error) == (JobState.queued, 0, None)
    with core.writing() as session, pytest.raises(jobs.JobConflict, match="wait for it"):
        jobs.retry(session, job_id)
    runner.run_next()
    assert read(core, job_id).state == JobState.succeeded and calls == [1, 1]
    with core.writing() as session, pytest.raises(jobs.JobConflict, match="submit a new job"):
        jobs.retry(session, job_id)


# --- several workers, several servers --------------------------------------------------------


def test_two_servers_with_three_workers_each_run_every_job_once(
    core: Core, started: list[JobRunner]
) -> None:
    ran: list[int] = []
    guard = threading.Lock()

    def record(parameters: dict[str, Any], context: JobContext) -> None:
        with guard:
            ran.append(parameters["n"])
        context.add_done()

    # The second "server" has its own write lock, as another process would (SQLite: flock).
    other_lock = db.write_lock(core.engine)
    try:
        first = make_runner(core, {"copy": record}, workers=3)
        second = make_runner(core, {"copy": record}, workers=3, lock=other_lock)
        started.extend([first, second])
        ids = [first.submit("copy", {"n": n}) for n in range(30)]
        first.start()
        second.start()
        for job_id in ids:
            wait_for(core, job_id, lambda job: job.state == JobState.succeeded)
        first.stop(5)
        second.stop(5)
    finally:
        other_lock.close()
    assert sorted(ran) == list(range(30))
    owners = {read(core, job_id).owner for job_id in ids}
    assert owners <= {first.owner, second.owner}


def test_stopping_the_server_requeues_a_running_job_without_spending_an_attempt(
    core: Core, started: list[JobRunner]
) -> None:
    def patient(parameters: dict[str, Any], context: JobContext) -> None:
        context.add_done()
        context.flush()
        while True:
            context.check_cancelled()
            time.sleep(0.01)

    runner = make_runner(core, {"copy": patient})
    started.append(runner)
    job_id = runner.submit("copy", {})
    runner.start()
    wait_for(core, job_id, lambda job: job.state == JobState.running and job.done == 1)
    runner.stop(WAIT)
    job = read(core, job_id)
    assert (job.state, job.attempts, job.owner) == (JobState.queued, 0, None)


# --- crashes and silent servers --------------------------------------------------------------

CRASHING_SERVER = """
import sys, time
from openpacs.archive.core import open_core
from openpacs.config import Settings
from openpacs.jobs import JobRunner

settings = Settings.model_validate_json(sys.argv[1])
core = open_core(settings, migrate=False)
runner = JobRunner(core.sessions, core.write_lock, settings.jobs)

def hang(parameters, context):
    context.set_total(2)
    context.add_done()
    context.save_checkpoint({"copied": 1})
    context.flush()
    time.sleep(600)  # killed here

runner.register("copy", hang)
runner.run_next()
"""


def test_a_job_left_running_by_a_crash_is_requeued_at_start_and_finishes(core: Core) -> None:
    with core.writing() as session:
        job_id = jobs.create(session, "copy", {"items": 2}).id
    crashing = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SERVER, core.settings.model_dump_json()], cwd=REPO
    )
    try:
        wait_for(core, job_id, lambda job: job.state == JobState.running and job.done == 1)
    finally:
        crashing.kill()  # SIGKILL: no cleanup runs, the job stays 'running'
        crashing.wait()
    assert read(core, job_id).state == JobState.running

    resumed: list[dict[str, Any] | None] = []

    def finish(parameters: dict[str, Any], context: JobContext) -> None:
        resumed.append(context.checkpoint)
        context.set_total(2)
        context.add_done(2)

    # The restarted server: same host, the old pid is gone, so no lease needs to run out.
    runner = make_runner(core, {"copy": finish}, lease_seconds=3600)
    runner.start()
    try:
        job = wait_for(core, job_id, lambda job: job.state == JobState.succeeded)
    finally:
        runner.stop(5)
    assert resumed == [{"copied": 1}]
    assert (job.attempts, job.done, job.error) == (2, 2, None)


def test_a_job_of_a_silent_server_is_taken_over_after_the_lease(core: Core) -> None:
    clock = Clock()
    with core.writing() as session:
        job_id = jobs.create(session, "copy", {"items": ["a"]}, at=clock.now).id
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", owner="far-host:4242:abc:def", heartbeat_at=clock.now)
        )
    runner = make_runner(core, {"copy": copy_items}, clock=clock, lease_seconds=60)
    clock.advance(59)
    assert runner.recover() == []  # another host: alive as long as it beats
    clock.advance(2)
    assert runner.recover() == [job_id]
    assert runner.run_next() == job_id
    assert read(core, job_id).state == JobState.succeeded


def test_a_job_that_keeps_crashing_its_server_fails(core: Core) -> None:
    clock = Clock()
    with core.writing() as session:
        job_id = jobs.create(session, "copy", {}, at=clock.now).id
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", owner="far-host:1:abc:def", heartbeat_at=clock.now, attempts=3)
        )
    clock.advance(3600)
    runner = make_runner(core, {"copy": copy_items}, clock=clock, max_attempts=3)
    assert runner.recover() == [job_id]
    job = read(core, job_id)
    assert job.state == JobState.failed and "stopped while it ran, 3 times" in (job.error or "")


def test_a_runner_lets_go_of_a_job_taken_over_by_another(core: Core) -> None:
    def overtaken(parameters: dict[str, Any], context: JobContext) -> None:
        with core.writing() as session:
            session.execute(update(Job).where(Job.id == context.job_id).values(owner="else"))
        context.add_done()
        context.flush()  # raises Lost: the runner stops without recording an outcome

    runner = make_runner(core, {"copy": overtaken})
    job_id = runner.submit("copy", {})
    assert runner.run_next() == job_id
    job = read(core, job_id)
    assert (job.state, job.owner, job.done) == (JobState.running, "else", 0)
