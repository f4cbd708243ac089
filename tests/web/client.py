"""A synchronous HTTP client for the app, in process through httpx's ASGI transport, signed in.

(starlette's TestClient warns about httpx, and the test suite turns warnings into errors.)

Every route but /health and the sign-in needs credentials, so the client sends a bearer token
of a user with the role asked for (admin by default), made in the app's index the first time;
`role=None` sends none. A test's own Authorization header replaces the token.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httpx
from fastapi import FastAPI

from openpacs.accounts import Role, passwords, tokens, users, utcnow
from openpacs.archive.core import Core

TEST_PASSWORD = "test-password-1"
LOOPBACK = ("127.0.0.1", 40000)


@functools.cache
def _password_hash() -> str:
    # argon2 takes a quarter of a second: once per test run, not per test.
    return passwords.hash_password(TEST_PASSWORD)


def make_user(core: Core, role: Role = Role.admin, username: str | None = None) -> str:
    """The name of a user with `role` and TEST_PASSWORD, made when missing."""
    name = username or f"test-{role.value}"
    with core.writing() as session:
        if users.find(session, name) is None:
            users.insert(session, name, _password_hash(), role, must_change=False)
    return name


def token_for(core: Core, role: Role = Role.admin, username: str | None = None) -> str:
    """A fresh bearer token of the test user with `role`."""
    name = make_user(core, role, username)
    with core.writing() as session:
        _, token = tokens.create(session, users.get(session, name), "tests", utcnow())
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Client:
    def __init__(
        self, app: FastAPI, peer: tuple[str, int] = LOOPBACK, role: Role | None = Role.admin
    ) -> None:
        self.app = app
        self.peer = peer
        self.headers: dict[str, str] = {}
        if role is not None:
            self.headers = bearer(token_for(app.state.core, role))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **(kwargs.pop("headers", None) or {})}

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.peer)
            async with httpx.AsyncClient(transport=transport, base_url="http://openpacs") as http:
                return await http.request(method, path, headers=headers, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)
