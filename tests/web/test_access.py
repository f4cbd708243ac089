"""Sign-in and access: every route but the public ones needs credentials; roles, CSRF, lockout,
forced password change, cookies, tokens, anonymous read, users and the audit log.

On SQLite and PostgreSQL; time is a clock the test moves, never a sleep."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route

from openpacs.accounts import Role
from openpacs.archive.core import Core, open_core
from openpacs.web.app import create_app
from tests.conftest import make_settings, sample
from tests.web.client import TEST_PASSWORD, Client, bearer, make_user, token_for
from tests.web.dicomweb_data import store

# Routes anyone may call: the sign-in, health, and FastAPI's documentation.
# The console's catch-all (web/console.py) serves the app's files and pages, never data.
PUBLIC_ROUTES = {("POST", "/api/auth/login"), ("GET", "/health"), ("GET", "/{path:console}")}
DOCS = {"/docs", "/docs/oauth2-redirect", "/openapi.json"}
CONSOLE = {"X-Requested-With": "openpacs-console"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Any]:
    opened: list[Core] = []

    def make(**auth: object) -> FastAPI:
        core = open_core(make_settings(tmp_path, database_url, auth=auth))
        opened.append(core)
        app: FastAPI = create_app(core, clock=clock)
        return app

    yield make
    for core in opened:
        core.close()


@pytest.fixture
def app(make_app: Any) -> FastAPI:
    made: FastAPI = make_app(max_failures=3, failure_window_minutes=10, lockout_minutes=15)
    return made


def core_of(app: FastAPI) -> Core:
    return app.state.core  # type: ignore[no-any-return]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def anonymous(app: FastAPI, peer: tuple[str, int] = ("198.51.100.7", 50000)) -> Client:
    return Client(app, peer, role=None)


class Browser:
    """Cookies kept between requests, as a browser keeps them (httpx's per-request cookies
    are deprecated, so they go in the Cookie header)."""

    def __init__(self, app: FastAPI, peer: tuple[str, int] = ("198.51.100.8", 50000)) -> None:
        self.client = Client(app, peer, role=None)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.client.request(method, path, headers=headers, **kwargs)
        for cookie in response.headers.get_list("set-cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if value and "max-age=0" not in cookie.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def login(self, username: str, password: str, **headers: str) -> httpx.Response:
        body = {"username": username, "password": password}
        return self.request("POST", "/api/auth/login", json=body, headers=headers)

    def csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.cookies["openpacs_csrf"]}


def endpoints(app: FastAPI) -> Iterator[tuple[str, set[str], BaseRoute]]:
    """Every route the app answers, with its full path (FastAPI keeps included routers as
    such and lists their routes through iter_route_contexts)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        for route in app.routes:
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), route
        return
    for context in contexts(app.routes):
        yield context.path or "", set(context.methods or ()), context.original_route


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


# --- every route ----------------------------------------------------------------------------


def test_every_route_but_the_public_ones_answers_401_without_credentials(app: FastAPI) -> None:
    client = anonymous(app)
    public = set()
    checked = 0
    for template, methods, route in endpoints(app):
        if isinstance(route, APIRoute):
            for method in sorted(methods):
                path = concrete(template)
                answer = client.request(method, path)
                if answer.status_code != 401:
                    public.add((method, template))
                    continue
                checked += 1
                assert answer.json()["detail"].startswith("sign in"), (method, path)
                assert answer.headers["www-authenticate"] == 'Basic realm="openpacs"'
                quiet = client.request(method, path, headers=CONSOLE)
                assert quiet.status_code == 401 and "www-authenticate" not in quiet.headers
        elif isinstance(route, Route):
            assert template in DOCS, f"{template}: a plain route outside the access check"
        else:
            assert not isinstance(route, Mount), f"{template}: a mount outside the check"
            raise AssertionError(f"unexpected route {route!r}")
    assert public == PUBLIC_ROUTES
    assert checked > 60  # DICOMweb (both roots), WADO-URI, OHIF, every /api router


def test_wrong_credentials_are_refused(app: FastAPI) -> None:
    client = anonymous(app)
    name = make_user(core_of(app), Role.viewer)
    for headers in (
        basic(name, "wrong"),
        basic("nobody", TEST_PASSWORD),
        {"Authorization": "Bearer opt_nope"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest x"},
        {"Cookie": "openpacs_session=forged"},
    ):
        assert client.get("/dicomweb/studies", headers=headers).status_code == 401, headers
    assert client.get("/dicomweb/studies", headers=basic(name, TEST_PASSWORD)).status_code == 200


def test_coming_from_this_machine_grants_nothing(app: FastAPI) -> None:
    local = anonymous(app, ("127.0.0.1", 40000))
    assert local.get("/dicomweb/studies").status_code == 401
    assert local.get("/api/system").status_code == 401


# --- roles --------------------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_delete_or_change_settings(app: FastAPI) -> None:
    viewer = Client(app, role=Role.viewer)
    assert viewer.get("/api/nodes").status_code == 200
    assert viewer.get("/dicomweb/studies").status_code == 200
    node = {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.2", "port": 104}
    for method, path, body in [
        ("POST", "/api/nodes", node),
        ("PUT", "/api/nodes/pacs", node),
        ("DELETE", "/api/nodes/pacs", None),
        ("DELETE", "/api/worklist/1", None),
        ("DELETE", "/api/print/jobs/1", None),
        ("POST", "/api/jobs/store", {"node": "pacs", "studies": ["1.2.3"]}),
        ("PUT", "/api/users/admin", {"role": "viewer"}),
        ("GET", "/api/users", None),
        ("GET", "/api/audit", None),
    ]:
        answer = viewer.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    # Its own tokens are its own business.
    assert viewer.post("/api/auth/tokens", json={"name": "script"}).status_code == 201


def test_an_operator_works_but_has_no_settings_users_or_audit(app: FastAPI) -> None:
    operator = Client(app, role=Role.operator)
    admin = Client(app)
    node = {"name": "pacs", "ae_title": "PACS", "host": "10.0.0.2", "port": 104}
    assert operator.post("/api/nodes", json=node).status_code == 403
    assert admin.post("/api/nodes", json=node).status_code == 201
    assert operator.delete("/api/nodes/pacs").status_code == 403
    assert operator.get("/api/users").status_code == 403
    assert operator.get("/api/audit").status_code == 403
    assert operator.delete("/api/worklist/999").status_code == 404  # allowed, nothing there
    assert operator.get("/api/nodes/pacs").status_code == 200


# --- cookies and CSRF ---------------------------------------------------------------------------


def test_cookie_sign_in_and_csrf(app: FastAPI) -> None:
    name = make_user(core_of(app), Role.operator)
    browser = Browser(app)
    signed = browser.login(name, TEST_PASSWORD)
    assert signed.status_code == 200
    assert signed.json() == {"username": name, "role": "operator", "must_change_password": False}
    assert browser.request("GET", "/api/auth/me").json()["username"] == name
    assert browser.request("GET", "/dicomweb/studies").status_code == 200
    refused = browser.request("POST", "/api/auth/tokens", json={"name": "x"})
    assert refused.status_code == 403
    assert refused.json() == {"detail": "CSRF token missing or wrong"}
    wrong = browser.request(
        "POST", "/api/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    assert browser.request("DELETE", "/api/worklist/5").status_code == 403
    made = browser.request("POST", "/api/auth/tokens", json={"name": "x"}, headers=browser.csrf())
    assert made.status_code == 201
    # Bearer and Basic carry no ambient authority: no CSRF token needed.
    assert (
        anonymous(app)
        .post("/api/auth/tokens", json={"name": "y"}, headers=basic(name, TEST_PASSWORD))
        .status_code
        == 201
    )
    assert browser.request("POST", "/api/auth/logout", headers=browser.csrf()).status_code == 204
    assert "openpacs_session" not in browser.cookies
    assert browser.request("GET", "/api/auth/me").status_code == 401


def _cookies(response: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}


def test_session_cookie_attributes(app: FastAPI) -> None:
    name = make_user(core_of(app), Role.viewer)
    plain = _cookies(Browser(app).login(name, TEST_PASSWORD))
    session, csrf = plain["openpacs_session"], plain["openpacs_csrf"]
    for attribute in ("httponly", "samesite=lax", "path=/"):
        assert attribute in session
    assert "secure" not in session
    assert "httponly" not in csrf and "samesite=lax" in csrf and "path=/" in csrf
    proxied = _cookies(Browser(app).login(name, TEST_PASSWORD, **{"X-Forwarded-Proto": "https"}))
    assert "; secure" in proxied["openpacs_session"] and "; secure" in proxied["openpacs_csrf"]


def test_cookie_secure_can_be_forced_either_way(make_app: Any) -> None:
    never = make_app(cookie_secure="false")
    name = make_user(core_of(never), Role.viewer)
    https = Browser(never).login(name, TEST_PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert "secure" not in _cookies(https)["openpacs_session"]


def test_sessions_end_when_idle_or_old(app: FastAPI, clock: Clock) -> None:
    name = make_user(core_of(app), Role.viewer)
    browser = Browser(app)
    browser.login(name, TEST_PASSWORD)
    clock.advance(minutes=59)
    assert browser.request("GET", "/api/auth/me").status_code == 200
    clock.advance(minutes=59)  # 59 minutes since the last use: still fine
    assert browser.request("GET", "/api/auth/me").status_code == 200
    clock.advance(minutes=61)
    assert browser.request("GET", "/api/auth/me").status_code == 401
    browser.login(name, TEST_PASSWORD)
    for _ in range(14):  # in use all day, but 12 hours is the most a session lives
        clock.advance(minutes=55)
        browser.request("GET", "/api/auth/me")
    assert browser.request("GET", "/api/auth/me").status_code == 401


# --- lockout ------------------------------------------------------------------------------------


def test_lockout_after_failures_and_unlock_after_the_window(app: FastAPI, clock: Clock) -> None:
    name = make_user(core_of(app), Role.viewer)
    browser = Browser(app)
    assert browser.login(name, "wrong-1").status_code == 401
    assert browser.login(name, "wrong-2").status_code == 401
    locked = browser.login(name, "wrong-3")
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60)
    right = browser.login(name, TEST_PASSWORD)
    assert right.status_code == 429  # locked: even the right password waits
    # Per user name: another address is locked out of this user too, Basic as well.
    other = anonymous(app, ("192.0.2.50", 1))
    assert other.get("/api/system", headers=basic(name, TEST_PASSWORD)).status_code == 429
    clock.advance(minutes=10)
    assert int(browser.login(name, TEST_PASSWORD).headers["retry-after"]) == 5 * 60
    clock.advance(minutes=5, seconds=1)
    assert browser.login(name, TEST_PASSWORD).status_code == 200


def test_failures_outside_the_window_do_not_add_up(app: FastAPI, clock: Clock) -> None:
    name = make_user(core_of(app), Role.viewer)
    browser = Browser(app)
    for _ in range(4):
        assert browser.login(name, "wrong").status_code == 401
        clock.advance(minutes=6)  # two failures at most in any 10 minutes
    assert browser.login(name, TEST_PASSWORD).status_code == 200


def test_one_address_guessing_many_users_is_locked(app: FastAPI) -> None:
    guesser = Browser(app, ("203.0.113.9", 1))
    for name in ("a-user", "b-user"):
        assert guesser.login(name, "guess").status_code == 401
    assert guesser.login("c-user", "guess").status_code == 429
    real = make_user(core_of(app), Role.viewer)
    assert guesser.login(real, TEST_PASSWORD).status_code == 429
    assert Browser(app, ("203.0.113.10", 1)).login(real, TEST_PASSWORD).status_code == 200


def test_basic_failures_count_toward_the_lockout(app: FastAPI) -> None:
    name = make_user(core_of(app), Role.viewer)
    client = anonymous(app)
    assert client.get("/dicomweb/studies", headers=basic(name, "x1")).status_code == 401
    assert client.get("/dicomweb/studies", headers=basic(name, "x2")).status_code == 401
    assert client.get("/dicomweb/studies", headers=basic(name, "x3")).status_code == 429


# --- forced password change ---------------------------------------------------------------------


def test_first_start_admin_must_change_the_password_before_anything_else(app: FastAPI) -> None:
    browser = Browser(app)
    signed = browser.login("admin", "admin")
    assert signed.status_code == 200
    assert signed.json() == {"username": "admin", "role": "admin", "must_change_password": True}
    blocked = browser.request("GET", "/api/system")
    assert blocked.status_code == 403
    assert blocked.json() == {"detail": "password change required"}
    assert browser.request("GET", "/dicomweb/studies").status_code == 403
    assert anonymous(app).get("/api/nodes", headers=basic("admin", "admin")).status_code == 403
    assert browser.request("GET", "/api/auth/me").json()["must_change_password"] is True
    old_cookie = browser.cookies["openpacs_session"]

    def change(current: str, new: str) -> httpx.Response:
        body = {"current_password": current, "new_password": new}
        return browser.request("POST", "/api/auth/password", json=body, headers=browser.csrf())

    for current, new, reason in [
        ("admin", "admin", "at least 8"),
        ("admin", "short", "at least 8"),
        ("admin", "Admin", "at least 8"),
        ("wrong-password", "a-good-password", "current password is wrong"),
    ]:
        refused = change(current, new)
        assert refused.status_code == 422, refused.text
        assert reason in refused.json()["detail"]
    assert change("admin", "a-good-password").status_code == 204
    assert browser.cookies["openpacs_session"] != old_cookie
    assert browser.request("GET", "/api/system").status_code == 200
    assert browser.request("GET", "/api/auth/me").json()["must_change_password"] is False
    stale = anonymous(app).get("/api/auth/me", headers={"Cookie": f"openpacs_session={old_cookie}"})
    assert stale.status_code == 401


def test_password_rules(make_app: Any) -> None:
    app = make_app(min_password_length=12)
    admin = Client(app)
    for password, reason in [
        ("eleven-char", "at least 12"),
        ("Somebody-Long", "may not be the user name"),
    ]:
        body = {"username": "somebody-long", "password": password, "role": "viewer"}
        answer = admin.post("/api/users", json=body)
        assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
    body = {"username": "somebody", "password": "twelve-chars", "role": "viewer"}
    assert admin.post("/api/users", json=body).status_code == 201
    same = admin.put("/api/users/somebody", json={"password": "twelve-chars"})
    assert same.status_code == 422 and "differ" in same.json()["detail"]


# --- tokens -------------------------------------------------------------------------------------


def test_tokens_work_until_revoked(app: FastAPI, clock: Clock) -> None:
    core = core_of(app)
    owner = Client(app, role=Role.operator)
    made = owner.post("/api/auth/tokens", json={"name": "backup script"})
    assert made.status_code == 201
    token = made.json()
    assert set(token) == {"id", "name", "token"} and token["name"] == "backup script"
    script = anonymous(app)
    assert script.get("/dicomweb/studies", headers=bearer(token["token"])).status_code == 200
    listed = {t["id"]: t for t in owner.get("/api/auth/tokens").json()}
    assert listed[token["id"]]["last_used_at"] is not None
    assert "token" not in listed[token["id"]]
    other = Client(app, role=Role.viewer)
    assert other.delete(f"/api/auth/tokens/{token['id']}").status_code == 404  # not theirs
    assert owner.delete(f"/api/auth/tokens/{token['id']}").status_code == 204
    assert script.get("/dicomweb/studies", headers=bearer(token["token"])).status_code == 401
    # A disabled user's tokens stop too.
    kept = token_for(core, Role.viewer, "leaver")
    assert script.get("/api/nodes", headers=bearer(kept)).status_code == 200
    assert Client(app).put("/api/users/leaver", json={"disabled": True}).status_code == 200
    assert script.get("/api/nodes", headers=bearer(kept)).status_code == 401


# --- anonymous read -----------------------------------------------------------------------------


def test_anonymous_read_lets_gets_through_but_no_changes(make_app: Any) -> None:
    app = make_app(anonymous_read=True)
    client = anonymous(app)
    assert client.get("/dicomweb/studies").status_code == 200
    assert client.get("/api/nodes").status_code == 200
    assert client.post("/api/worklist", json={}).status_code == 401
    assert client.delete("/api/nodes/x").status_code == 401
    assert client.get("/api/users").status_code == 403  # a reader, not an admin
    assert client.get("/api/auth/me").status_code == 401
    assert client.post("/api/auth/tokens", json={"name": "x"}).status_code == 401


# --- users --------------------------------------------------------------------------------------


def test_user_administration(app: FastAPI) -> None:
    admin = Client(app)
    body = {"username": "nurse", "password": "a-long-password", "role": "viewer"}
    made = admin.post("/api/users", json=body)
    assert made.status_code == 201
    assert made.json()["must_change_password"] is True
    assert admin.post("/api/users", json=body).status_code == 409
    bad = admin.post("/api/users", json={**body, "username": "no spaces"})
    assert bad.status_code == 422
    changed = admin.put("/api/users/nurse", json={"role": "operator"})
    assert changed.json()["role"] == "operator"
    names = [u["username"] for u in admin.get("/api/users").json()]
    assert "nurse" in names and "admin" in names
    assert admin.delete("/api/users/nurse").status_code == 204
    assert admin.delete("/api/users/nurse").status_code == 404
    # The first admin may go only when another enabled admin remains.
    assert admin.delete("/api/users/admin").status_code == 204
    last = make_user(core_of(app), Role.admin)
    assert admin.put(f"/api/users/{last}", json={"role": "viewer"}).status_code == 409
    assert admin.put(f"/api/users/{last}", json={"disabled": True}).status_code == 409
    assert admin.delete(f"/api/users/{last}").status_code == 409


# --- audit --------------------------------------------------------------------------------------


def test_audit_records_sign_ins_and_study_retrievals(app: FastAPI, clock: Clock) -> None:
    core = core_of(app)
    item = store(core, sample("CT_small.dcm"))
    name = make_user(core, Role.viewer)
    browser = Browser(app, ("192.0.2.1", 1))
    assert browser.login(name, "nope").status_code == 401
    clock.advance(seconds=1)
    assert browser.login(name, TEST_PASSWORD).status_code == 200
    clock.advance(seconds=1)
    study = f"/dicomweb/studies/{item.study}"
    assert browser.request("GET", f"{study}/metadata").status_code == 200
    instance = f"{study}/series/{item.series}/instances/{item.sop}"
    assert browser.request("GET", f"{instance}/frames/1").status_code == 200  # not audited
    wado = f"/wado?requestType=WADO&studyUID={item.study}&seriesUID={item.series}"
    assert browser.request("GET", f"{wado}&objectUID={item.sop}").status_code == 200
    assert browser.request("GET", "/dicomweb/studies/1.2.3/metadata").status_code == 404

    admin = Client(app)
    page = admin.get("/api/audit", params={"user": name}).json()
    actions = [(e["action"], e["study_instance_uid"]) for e in page["items"]]
    assert actions == [
        ("opened", item.study),
        ("opened", item.study),
        ("login", None),
        ("login-failed", None),
    ]
    assert page["total"] == 4
    assert {e["address"] for e in page["items"]} == {"192.0.2.1"}
    opened = admin.get("/api/audit", params={"study": item.study}).json()["items"]
    assert [e["detail"] for e in opened] == [
        "WADO-URI: one object, as DICOM or as an image",
        "WADO-RS: metadata of a study",
    ]
    assert opened[0]["sop_instance_uid"] == item.sop
    assert admin.get("/api/audit", params={"action": "login-failed"}).json()["total"] == 1
    since = (clock.now - dt.timedelta(seconds=1)).isoformat()
    recent = admin.get("/api/audit", params={"user": name, "since": since}).json()
    assert recent["total"] == 3
    second = admin.get("/api/audit", params={"user": name, "limit": 1, "offset": 1}).json()
    assert second["total"] == 4 and len(second["items"]) == 1
    assert second["items"][0]["action"] == "opened"
