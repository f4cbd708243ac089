"""The job runner: worker threads that claim queued jobs from the index and run their handlers.

Every state change is a short transaction, so a job survives a restart and several servers can
share one database:

- claiming takes the oldest due job with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL and
  under the write lock (`BEGIN IMMEDIATE`) on SQLite, so one job runs in one place;
- the runner owning a job refreshes its heartbeat; a running job whose owner died on this host
  (a crash, a kill) is re-queued at the next start, and one not heard of for
  `jobs.lease_seconds` is re-queued by any runner;
- progress is buffered by the handler's context and written at most every FLUSH_SECONDS, in the
  same transaction that reads the cancel flag.

A handler is a function (parameters, context) -> None. It reports progress and per-item failures
through the context, calls `context.check_cancelled()` between items, raises `Transient` for a
failure worth retrying (OSError counts as one too); any other exception fails the job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openpacs import logs
from openpacs.archive import db
from openpacs.archive.models import Job, JobFailure
from openpacs.config import JobsSettings
from openpacs.jobs import repository
from openpacs.jobs.errors import Cancelled, Interrupted, Lost, Transient
from openpacs.jobs.repository import JobState

log = logs.get_logger("jobs")

FLUSH_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 3600.0
ITEM_LENGTH = 512
# One per process: tells a restarted server from the one before it even when both had the same
# host name and pid (pid 1 in a container).
_PROCESS = uuid.uuid4().hex[:12]

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    parameters: dict[str, Any]
    checkpoint: dict[str, Any] | None
    attempt: int


class JobContext:
    """What a handler sees of its job: report progress and failures, save a checkpoint, and
    learn about cancellation. Writes are buffered and flushed at most every FLUSH_SECONDS."""

    def __init__(self, runner: JobRunner, claimed: _Claimed) -> None:
        self.job_id = claimed.id
        self.kind = claimed.kind
        self.attempt = claimed.attempt
        # What an earlier attempt saved with save_checkpoint(); None on the first run.
        self.checkpoint = claimed.checkpoint
        self._runner = runner
        self._total: int | None = None
        self._done = 0
        self._failed = 0
        self._failures: list[tuple[str, str, dt.datetime]] = []
        self._checkpoint_dirty = False
        self._cancel_requested = False
        self._flushed_at = time.monotonic()

    @property
    def cancel_requested(self) -> bool:
        """Whether cancellation was asked for, as of the last flush."""
        return self._cancel_requested

    def set_total(self, total: int) -> None:
        self._total = total
        self._flush_if_due()

    def add_done(self, count: int = 1) -> None:
        self._done += count
        self._flush_if_due()

    def add_failure(self, item: str, reason: str) -> None:
        """One item (a SOP Instance UID, a file) failed; the job goes on with the others."""
        self._failed += 1
        self._failures.append((item[:ITEM_LENGTH], reason, self._runner.clock()))
        self._flush_if_due()

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Where to resume after a retry or restart; handed back as `checkpoint`."""
        self.checkpoint = repository.json_object(state, "checkpoint")
        self._checkpoint_dirty = True
        self._flush_if_due()

    def check_cancelled(self) -> None:
        """Call between items: raises Cancelled or Interrupted when the job should stop."""
        self._flush_if_due()
        if self._runner.stopping:
            raise Interrupted(f"job {self.job_id}: the server is stopping")
        if self._cancel_requested:
            raise Cancelled(f"job {self.job_id} was cancelled")

    def flush(self) -> None:
        """Write buffered progress now (the runner does at the end of the attempt)."""
        with self._runner.writing() as session:
            self.write(session, repository.get(session, self.job_id, for_update=True))

    def write(self, session: Session, job: Job) -> None:
        if job.owner != self._runner.owner or job.state != JobState.running:
            raise Lost(f"job {self.job_id} is no longer run here (state {job.state})")
        if self._total is not None:
            job.total = self._total
        job.done = self._done
        job.failed = self._failed
        if self._checkpoint_dirty:
            job.checkpoint = self.checkpoint
            self._checkpoint_dirty = False
        for item, reason, at in self._failures:
            session.add(JobFailure(job_id=job.id, item=item, reason=reason, at=at))
        self._failures.clear()
        job.heartbeat_at = self._runner.clock()
        self._cancel_requested = job.cancel_requested
        self._flushed_at = time.monotonic()

    def _flush_if_due(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()


Handler = Callable[[dict[str, Any], JobContext], None]


@dataclass(frozen=True)
class _Ending:
    """How an attempt ended, before it is written down."""

    how: str  # completed | cancelled | interrupted | transient | error
    message: str = ""


class JobRunner:
    """Runs the handlers registered per job kind on `settings.workers` threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        write_lock: db.WriteLock | db.NoLock,
        settings: JobsSettings,
        *,
        clock: Clock = repository.now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{_PROCESS}:{uuid.uuid4().hex[:8]}"
        self._sessions = sessions
        self._lock = write_lock
        self._handlers: dict[str, Handler] = {}
        self._stopping = threading.Event()
        self._signal = threading.Condition()
        self._signals = 0
        self._threads: list[threading.Thread] = []
        # Jobs this runner's threads are in: the heartbeat covers exactly these.
        self._active: set[int] = set()
        self._active_lock = threading.Lock()

    # --- set-up ---------------------------------------------------------------------------

    def register(self, kind: str, handler: Handler) -> None:
        """Run `handler` for jobs of `kind`; register every kind before start()."""
        if not 0 < len(kind) <= repository.KIND_LENGTH:
            raise ValueError(f"job kind {kind!r}: use 1-{repository.KIND_LENGTH} characters")
        if kind in self._handlers:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        self._handlers[kind] = handler

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that takes turns with the other SQLite writers."""
        with self._lock, db.write_session(self._sessions) as session:
            yield session

    # --- submitting -----------------------------------------------------------------------

    def submit(self, kind: str, parameters: Mapping[str, Any]) -> int:
        """Queue a job in its own transaction and wake a worker; returns the job id."""
        if kind not in self._handlers:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise ValueError(f"no handler for job kind {kind!r} (registered: {known})")
        with self.writing() as session:
            job_id = repository.create(session, kind, parameters, at=self.clock()).id
        self.wake()
        return job_id

    def wake(self) -> None:
        """Tell idle workers to look for work now (a job was queued or retried)."""
        with self._signal:
            self._signals += 1
            self._signal.notify_all()

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Re-queue jobs abandoned by a crash, then start the workers and the heartbeat."""
        if self.settings.workers == 0:
            log.info("jobs.workers = 0: this server runs no jobs")
            return
        recovered = self.recover()
        if recovered:
            log.info("re-queued %d job(s) left running by an earlier run: %s", *_ids(recovered))
        for number in range(1, self.settings.workers + 1):
            self._spawn(self._work, f"jobs-{number}")
        self._spawn(self._keep, "jobs-heartbeat")
        kinds = ", ".join(sorted(self._handlers)) or "none registered yet"
        log.info("%d job workers started (kinds: %s)", self.settings.workers, kinds)

    def stop(self, timeout: float = 10) -> None:
        """Ask running handlers to stop (at their next check_cancelled) and wait for them."""
        self._stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "%s still busy after %.0f s; its job resumes at the next start",
                    thread.name,
                    timeout,
                )
        self._threads.clear()

    def run_next(self) -> int | None:
        """Claim the next due job and run it in this thread; its id, or None when none is due."""
        claimed = self._claim()
        if claimed is None:
            return None
        try:
            self._run(claimed)
        finally:
            # A job whose outcome could not be written (index down) loses its heartbeat, so
            # the lease hands it to a runner once the index is back.
            with self._active_lock:
                self._active.discard(claimed.id)
        return claimed.id

    def _running(self) -> set[int]:
        with self._active_lock:
            return set(self._active)

    def recover(self) -> list[int]:
        """Re-queue running jobs whose runner is gone: dead on this host, or silent for longer
        than the lease. A job interrupted `max_attempts` times fails instead."""
        now = self.clock()
        stale = now - dt.timedelta(seconds=self.settings.lease_seconds)
        recovered = []
        with self.writing() as session:
            query = select(Job).where(Job.state == JobState.running)
            for job in session.scalars(query.with_for_update(skip_locked=True)):
                if job.owner == self.owner and job.id in self._running():
                    continue
                silent = job.heartbeat_at is None or job.heartbeat_at < stale
                if silent or _abandoned(job.owner):
                    self._requeue_abandoned(job, now)
                    recovered.append(job.id)
        return recovered

    def _requeue_abandoned(self, job: Job, now: dt.datetime) -> None:
        if job.attempts >= self.settings.max_attempts:
            job.state = JobState.failed
            job.finished_at = now
            job.error = (
                f"its server stopped while it ran, {job.attempts} times; "
                f"retry it (POST /api/jobs/{job.id}/retry) once the cause is fixed"
            )
            return
        job.state = JobState.queued
        job.next_attempt_at = now
        job.error = "its server stopped while it ran; queued again"
        job.owner = None

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        # Daemon: a handler that never checks for cancellation cannot hold the process open.
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._signal:
                seen = self._signals
            ran = None
            try:
                ran = self.run_next()
            except SQLAlchemyError as exc:
                log.warning("cannot read the job queue: %s", db.describe(exc))
            except Exception:
                log.exception("job worker failed; it carries on")
            if ran is None:
                with self._signal:
                    if self._signals == seen and not self._stopping.is_set():
                        self._signal.wait(self.settings.poll_seconds)

    def _keep(self) -> None:
        """Heartbeat for our running jobs; take over the ones whose runner went silent."""
        interval = self.settings.lease_seconds / 3
        while not self._stopping.wait(interval):
            try:
                running = self._running()
                if running:
                    with self.writing() as session:
                        session.execute(
                            update(Job)
                            .where(Job.id.in_(running), Job.owner == self.owner)
                            .values(heartbeat_at=self.clock())
                        )
                recovered = self.recover()
                if recovered:
                    self.wake()
                    log.info("took over %d job(s) whose server went silent: %s", *_ids(recovered))
            except SQLAlchemyError as exc:
                log.warning("cannot refresh job heartbeats: %s", db.describe(exc))

    def _claim(self) -> _Claimed | None:
        kinds = self.kinds
        if not kinds or self._stopping.is_set():
            return None
        now = self.clock()
        due = (Job.state == JobState.queued, Job.next_attempt_at <= now, Job.kind.in_(kinds))
        # A plain read first, so idle workers never queue for SQLite's write lock.
        with self._sessions() as session:
            if session.scalars(select(Job.id).where(*due).limit(1)).first() is None:
                return None
        with self.writing() as session:
            oldest = select(Job).where(*due).order_by(Job.next_attempt_at, Job.id).limit(1)
            job = session.scalars(oldest.with_for_update(skip_locked=True)).first()
            if job is None:
                return None
            job.state = JobState.running
            job.owner = self.owner
            job.attempts += 1
            job.started_at = job.started_at or now
            job.heartbeat_at = now
            # Counts and failures describe the latest attempt.
            job.done = 0
            job.failed = 0
            session.execute(delete(JobFailure).where(JobFailure.job_id == job.id))
            claimed = _Claimed(job.id, job.kind, dict(job.parameters), job.checkpoint, job.attempts)
        with self._active_lock:
            self._active.add(claimed.id)
        return claimed

    def _run(self, claimed: _Claimed) -> None:
        context = JobContext(self, claimed)
        attempts = f"attempt {claimed.attempt} of {self.settings.max_attempts}"
        log.info("job %d (%s) started, %s", claimed.id, claimed.kind, attempts)
        started = time.monotonic()
        try:
            self._handlers[claimed.kind](claimed.parameters, context)
            ending = _Ending("completed")
        except Cancelled:
            ending = _Ending("cancelled")
        except Interrupted as exc:
            ending = _Ending("interrupted", str(exc))
        except Lost as exc:
            log.warning("%s; this runner lets it go", exc)
            return
        except (Transient, OSError, SQLAlchemyError) as exc:
            # SQLAlchemyError: the index failed under the handler, not the job itself.
            ending = _Ending("transient", _describe(exc))
        except Exception as exc:
            log.exception("job %d (%s) failed", claimed.id, claimed.kind)
            ending = _Ending("error", _describe(exc))
        try:
            state = self._finish(context, ending)
        except Lost as exc:
            log.warning("%s; its outcome is not recorded here", exc)
            return
        except SQLAlchemyError as exc:
            log.warning(
                "job %d (%s): outcome not recorded (%s); it runs again once its lease runs out",
                claimed.id,
                claimed.kind,
                db.describe(exc),
            )
            return
        seconds = time.monotonic() - started
        log.info("job %d (%s) %s after %.1f s", claimed.id, claimed.kind, state, seconds)

    def _finish(self, context: JobContext, ending: _Ending) -> str:
        with self.writing() as session:
            job = repository.get(session, context.job_id, for_update=True)
            context.write(session, job)
            self._settle(job, ending, self.clock())
            return job.state

    def _settle(self, job: Job, ending: _Ending, now: dt.datetime) -> None:
        if ending.how == "interrupted":
            # Stopping the server is no fault of the job: the attempt does not count.
            job.state = JobState.queued
            job.attempts -= 1
            job.owner = None
            job.next_attempt_at = now
            return
        if ending.how == "transient" and not job.cancel_requested:
            if job.attempts < self.settings.max_attempts:
                delay = min(
                    self.settings.backoff_seconds * 2 ** (job.attempts - 1), MAX_BACKOFF_SECONDS
                )
                job.state = JobState.queued
                job.owner = None
                job.next_attempt_at = now + dt.timedelta(seconds=delay)
                job.error = f"attempt {job.attempts} failed, retrying in {delay:.0f} s: " + (
                    ending.message
                )
                return
            ending = _Ending("error", f"gave up after {job.attempts} attempts: {ending.message}")
        job.finished_at = now
        if ending.how in {"cancelled", "transient"}:
            job.state = JobState.cancelled
            job.error = None
        elif ending.how == "error":
            job.state = JobState.failed
            job.error = ending.message
        elif job.failed == 0:
            job.state = JobState.succeeded
            job.error = None
        elif job.done == 0:
            job.state = JobState.failed
            job.error = f"every item failed ({job.failed}); see the job's failures"
        else:
            job.state = JobState.partly_failed
            job.error = f"{job.failed} of {job.done + job.failed} items failed"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ids(ids: list[int]) -> tuple[int, str]:
    return len(ids), ", ".join(str(i) for i in ids)


def _abandoned(owner: str | None) -> bool:
    """Whether the runner named `owner` ran on this host in a process that is gone."""
    parts = (owner or "").split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid, process = int(parts[1]), parts[2]
    if process == _PROCESS:
        return False  # another runner of this very process: alive
    if pid == os.getpid():
        return True  # our pid, but an earlier process had it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, as another user
    return False
