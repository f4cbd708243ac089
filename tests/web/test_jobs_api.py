"""/api/jobs as a client sees it: list, read, cancel, retry, over a real index and runner."""

from __future__ import annotations

from typing import Any

import pytest

from openpacs import jobs
from openpacs.archive.core import Core
from openpacs.config import JobsSettings
from openpacs.jobs import JobContext, JobRunner
from tests.web.client import Client
from tests.web.conftest import Wakes


def copy_items(parameters: dict[str, Any], context: JobContext) -> None:
    context.set_total(len(parameters["items"]))
    for item in parameters["items"]:
        context.check_cancelled()
        if item.startswith("bad"):
            context.add_failure(item, "destination refused it (0xA700)")
        else:
            context.add_done()


@pytest.fixture
def runner(core: Core) -> JobRunner:
    """A runner driven one job at a time by the tests (never started)."""
    runner = JobRunner(core.sessions, core.write_lock, JobsSettings(backoff_seconds=0))
    runner.register("copy", copy_items)
    return runner


def test_list_newest_first_and_filtered(client: Client, runner: JobRunner) -> None:
    first = runner.submit("copy", {"items": ["a"]})
    second = runner.submit("copy", {"items": ["b"]})
    runner.run_next()  # the oldest runs first

    listed = client.get("/api/jobs").json()
    assert [job["id"] for job in listed] == [second, first]
    assert [job["state"] for job in listed] == ["queued", "succeeded"]
    assert [j["id"] for j in client.get("/api/jobs?state=succeeded").json()] == [first]
    assert client.get("/api/jobs?kind=move").json() == []
    assert [j["id"] for j in client.get("/api/jobs?limit=1&offset=1").json()] == [first]
    queued = listed[0]
    assert queued["next_attempt_at"] is not None and listed[1]["next_attempt_at"] is None


@pytest.mark.parametrize("query", ["state=done", "limit=0", "limit=1001", "offset=-1"])
def test_bad_list_parameters_are_422(client: Client, query: str) -> None:
    assert client.get(f"/api/jobs?{query}").status_code == 422


def test_a_job_with_its_progress_and_failures(client: Client, runner: JobRunner) -> None:
    job_id = runner.submit("copy", {"items": ["ok", "bad-1", "ok", "bad-2"]})
    runner.run_next()
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    job = response.json()
    assert {k: job[k] for k in ("kind", "state", "total", "done", "failed", "attempts")} == {
        "kind": "copy",
        "state": "partly_failed",
        "total": 4,
        "done": 2,
        "failed": 2,
        "attempts": 1,
    }
    assert job["parameters"] == {"items": ["ok", "bad-1", "ok", "bad-2"]}
    assert job["error"] == "2 of 4 items failed" and job["cancel_requested"] is False
    assert [(f["item"], f["reason"]) for f in job["failures"]] == [
        ("bad-1", "destination refused it (0xA700)"),
        ("bad-2", "destination refused it (0xA700)"),
    ]
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


REFUSED = set[str]()  # what store_like's node refuses now


def store_like(parameters: dict[str, Any], context: JobContext) -> None:
    """Like dimse/store_job.py: the checkpoint lists what the node stored, earlier attempts'
    too; an instance the node refuses is a failure of this attempt."""
    sent = list((context.checkpoint or {}).get("sent", []))
    context.set_total(len(parameters["instances"]))
    context.add_done(len(sent))
    for uid in parameters["instances"]:
        if uid in sent:
            continue
        if uid in REFUSED:
            context.add_failure(uid, "the node answered status 0xA700")
        else:
            sent.append(uid)
            context.add_done()
    context.save_checkpoint({"sent": sent})


def test_a_store_job_says_which_instances_the_node_stored(
    client: Client, runner: JobRunner
) -> None:
    runner.register("store", store_like)
    REFUSED.add("1.2.9")
    job_id = runner.submit("store", {"node": "pacs", "instances": ["1.2.1", "1.2.9", "1.2.3"]})
    runner.run_next()
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["state"], job["done"], job["failed"]) == ("partly_failed", 2, 1)
    assert job["sent"] == ["1.2.1", "1.2.3"]
    assert [(f["item"], f["reason"]) for f in job["failures"]] == [
        ("1.2.9", "the node answered status 0xA700")
    ]

    REFUSED.clear()  # the node takes it now
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 200
    runner.run_next()
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["state"], job["done"], job["failed"]) == ("succeeded", 3, 0)
    assert job["sent"] == ["1.2.1", "1.2.3", "1.2.9"] and job["failures"] == []
    # Other kinds list nothing sent, whatever their checkpoint holds.
    other = runner.submit("copy", {"items": ["a"]})
    runner.run_next()
    assert client.get(f"/api/jobs/{other}").json()["sent"] == []


def test_unknown_jobs_are_404(client: Client) -> None:
    for method, path in [
        ("GET", "/api/jobs/42"),
        ("POST", "/api/jobs/42/cancel"),
        ("POST", "/api/jobs/42/retry"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json() == {
            "error": "JobNotFound",
            "detail": "no job 42; GET /api/jobs lists them",
        }
    assert client.get("/api/jobs/not-a-number").status_code == 422


def test_cancel_then_retry(client: Client, runner: JobRunner, wakes: Wakes) -> None:
    job_id = runner.submit("copy", {"items": ["a", "b"]})
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled" and response.json()["finished_at"]
    assert runner.run_next() is None

    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert "cancelled already" in response.json()["detail"]

    response = client.post(f"/api/jobs/{job_id}/retry")
    assert response.status_code == 200
    retried = response.json()
    assert (retried["state"], retried["attempts"], retried["finished_at"]) == ("queued", 0, None)
    assert wakes.count == 1  # an idle worker is told at once

    response = client.post(f"/api/jobs/{job_id}/retry")
    assert response.status_code == 409
    assert response.json()["error"] == "JobConflict"

    assert runner.run_next() == job_id
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "succeeded"
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 409


def test_cancel_a_running_job_sets_the_flag(client: Client, core: Core) -> None:
    with core.writing() as session:
        job = jobs.create(session, "copy", {"items": []})
        job.state = jobs.JobState.running
    response = client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 200
    assert response.json()["state"] == "running" and response.json()["cancel_requested"] is True


def test_openapi_documents_the_job_routes(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/jobs"]) == {"get"}
    assert set(paths["/api/jobs/{job_id}"]) == {"get"}
    assert set(paths["/api/jobs/{job_id}/cancel"]) == {"post"}
    assert set(paths["/api/jobs/{job_id}/retry"]) == {"post"}
