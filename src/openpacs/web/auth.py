"""The one access check: every HTTP route but the public ones needs a signed-in user.

A request proves who it is in one of three ways, tried in this order:
- `Authorization: Bearer <token>`: a personal API token (scripts, viewers);
- `Authorization: Basic ...`: a user's name and password (DICOMweb clients); failures count
  toward the sign-in lockout like the form's, and a verified password is remembered
  (`passwords.VerifiedCache`) so argon2 runs once, not per request;
- the `openpacs_session` cookie from `POST /api/auth/login` (the console, OHIF). A
  state-changing request with the cookie must also carry `X-CSRF-Token` equal to the
  `openpacs_csrf` cookie (double submit; the value is derived from the session id).

Then: a user who must change the password reaches only /api/auth/*; a viewer only reads
(GET/HEAD); `admin_only` routes want an admin. With `[auth] anonymous_read`, a GET without
credentials passes as an anonymous viewer. A client's address is the connection's (uvicorn
takes it from X-Forwarded-For only when the proxy is a trusted one, by default on this
machine): coming from this machine no longer lets anyone in.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openpacs.accounts import (
    Action,
    Actor,
    Clock,
    LockedOut,
    Role,
    audit,
    passwords,
    throttle,
    tokens,
    users,
)
from openpacs.accounts import sessions as user_sessions
from openpacs.archive import db
from openpacs.archive.errors import IndexUnavailable
from openpacs.archive.models import User
from openpacs.config import AuthSettings, CookieSecure
from openpacs.logs import get_logger
from openpacs.web.api.deps import core_of

log = get_logger("api")

SESSION_COOKIE = "openpacs_session"
CSRF_COOKIE = "openpacs_csrf"
CSRF_HEADER = "x-csrf-token"
CONSOLE = "openpacs-console"  # X-Requested-With of the console: no Basic dialog over it
CHALLENGE = {"WWW-Authenticate": 'Basic realm="openpacs"'}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SELF_SERVICE = "/api/auth/"  # a user's own sign-in, password, tokens: any role, any state
# `openapi_extra=PUBLIC` marks a route anyone may call (OpenAPI: no security requirement).
PUBLIC: dict[str, Any] = {"security": []}


@dataclass
class Access:
    """What the check needs besides the request: settings, the clock, verified passwords."""

    settings: AuthSettings
    clock: Clock
    verified: passwords.VerifiedCache = field(default_factory=passwords.VerifiedCache)

    @property
    def lifetime(self) -> user_sessions.Lifetime:
        return user_sessions.Lifetime(
            dt.timedelta(hours=self.settings.session_hours),
            dt.timedelta(minutes=self.settings.idle_minutes),
        )

    @property
    def limits(self) -> throttle.Limits:
        return throttle.Limits.of(self.settings)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (by session, token or Basic), or anonymous (user None)."""

    user: User | None
    method: str  # session | token | basic | anonymous
    address: str | None
    session_id: str | None = None
    read_only: bool = False  # a launch token (weasis:// links): reads, whatever the role

    @property
    def username(self) -> str | None:
        return self.user.username if self.user else None

    @property
    def role(self) -> Role:
        return Role(self.user.role) if self.user and not self.read_only else Role.viewer

    @property
    def actor(self) -> Actor:
        return Actor(self.username, self.address)


def access_of(request: Request) -> Access:
    return request.app.state.access  # type: ignore[no-any-return]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def is_public(request: Request) -> bool:
    route = request.scope.get("route")
    return isinstance(route, APIRoute) and (route.openapi_extra or {}).get("security") == []


def unauthorized(request: Request, detail: str) -> HTTPException:
    """401; with a Basic challenge unless the console asked (no browser dialog over it)."""
    console = request.headers.get("x-requested-with", "").lower() == CONSOLE
    return HTTPException(401, detail=detail, headers=None if console else CHALLENGE)


def too_many(locked: LockedOut) -> HTTPException:
    return HTTPException(429, detail=str(locked), headers={"Retry-After": str(locked.retry_after)})


def require_access(request: Request) -> None:
    """The app-wide dependency: identify the caller, then apply state and role rules."""
    if is_public(request):
        return
    try:
        principal = identify(request)
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc
    if principal is None:
        if (
            access_of(request).settings.anonymous_read
            and request.method in SAFE_METHODS
            and not request.url.path.startswith(SELF_SERVICE)
        ):
            request.state.principal = Principal(None, "anonymous", client_address(request))
            return
        raise unauthorized(
            request, "sign in: a session, a bearer token or HTTP Basic credentials are required"
        )
    request.state.principal = principal
    if principal.read_only and request.method not in SAFE_METHODS:
        # Not even its user's own settings: a leaked link must not mint lasting tokens.
        raise HTTPException(403, detail="a launch token may only read")
    if request.url.path.startswith(SELF_SERVICE):
        return
    if principal.user is not None and principal.user.must_change_password:
        raise HTTPException(403, detail="password change required")
    if principal.role == Role.viewer and request.method not in SAFE_METHODS:
        raise HTTPException(403, detail="the viewer role may only read")


def principal_of(request: Request) -> Principal:
    found = getattr(request.state, "principal", None)
    if found is None:  # a public route asking who calls: whoever the credentials say
        found = identify(request) or Principal(None, "anonymous", client_address(request))
        request.state.principal = found
    return found


def signed_in(request: Request) -> Principal:
    """A principal that is a user (anonymous read does not count)."""
    principal = principal_of(request)
    if principal.user is None:
        raise unauthorized(request, "sign in first")
    return principal


def admin_only(request: Request) -> None:
    """Dependency for settings, users and the audit log."""
    if principal_of(request).role != Role.admin:
        raise HTTPException(403, detail="only an admin may do this")


CurrentUser = Annotated[Principal, Depends(signed_in)]
AdminOnly = Depends(admin_only)


def identify(request: Request) -> Principal | None:
    """The caller by Authorization header or session cookie; None without credentials.
    Wrong credentials are 401 (429 when locked out), a cookie POST without CSRF token 403."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return _by_token(request, value.strip())
        if scheme == "basic":
            return _by_basic(request, value.strip())
        raise unauthorized(request, f"unsupported authorization scheme {scheme!r}: Basic or Bearer")
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        return _by_session(request, session_id)
    return None


def _by_token(request: Request, token: str) -> Principal:
    access = access_of(request)
    core = core_of(request)
    now = access.clock()
    with core.sessions() as session:
        found = tokens.find_token(session, token) if token else None
    if found is None or found[1].disabled:
        raise unauthorized(request, "unknown or revoked token")
    row, user = found
    if row.expires_at is not None and row.expires_at <= now:
        raise unauthorized(request, "this token has expired; ask for a new link")
    if tokens.needs_touch(row, now):
        with core.writing() as session:
            tokens.touch(session, row.id, now)
    return Principal(user, "token", client_address(request), read_only=row.read_only)


def _by_basic(request: Request, value: str) -> Principal:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized(request, "malformed Basic credentials") from exc
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        raise unauthorized(request, "malformed Basic credentials")
    access = access_of(request)
    user = verify_password(request, username, password, access.verified.verify, via="HTTP Basic")
    return Principal(user, "basic", client_address(request))


def verify_password(
    request: Request,
    username: str,
    password: str,
    verify: Any = passwords.verify,
    *,
    via: str,
) -> User:
    """The user whose password this is; else the failure is counted and audited and 401 (429
    when this failure, or earlier ones, locked the user name or the client's address)."""
    access = access_of(request)
    core = core_of(request)
    address = client_address(request)
    now = access.clock()
    with core.sessions() as session:
        try:
            throttle.check(session, username, address, now)
        except LockedOut as exc:
            raise too_many(exc) from None
        user = users.find(session, username)
    if user is not None and not user.disabled and verify(user.password_hash, password):
        return user
    actor = Actor(username, address)
    with core.writing() as session:
        locked = throttle.failed(session, username, address, access.limits, now)
        audit.record(
            session, actor, Action.login_failed, at=now, obj=f"user:{username}", detail=via
        )
        if locked is not None:
            audit.record(
                session, actor, Action.locked_out, at=now, obj=f"user:{username}", detail=via
            )
    log.warning("sign-in failed for %r from %s (%s)", username, address, via)
    if locked is not None:
        raise too_many(locked)
    raise unauthorized(request, "wrong user name or password")


def _by_session(request: Request, session_id: str) -> Principal | None:
    access = access_of(request)
    core = core_of(request)
    now = access.clock()
    with core.sessions() as session:
        found = user_sessions.find_session(session, session_id, access.lifetime, now)
    if found is None or found[1].disabled:
        return None  # expired or ended: as if no cookie came (anonymous read may apply)
    row, user = found
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        expected = user_sessions.csrf_token(session_id)
        if not sent or sent != request.cookies.get(CSRF_COOKIE) or sent != expected:
            raise HTTPException(403, detail="CSRF token missing or wrong")
    if user_sessions.needs_touch(row, now):
        with core.writing() as session:
            user_sessions.touch(session, row.id_hash, now)
    return Principal(user, "session", client_address(request), session_id)


def secure_cookies(request: Request, settings: AuthSettings) -> bool:
    if settings.cookie_secure != CookieSecure.auto:
        return settings.cookie_secure == CookieSecure.true
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_session_cookies(request: Request, response: Response, session_id: str) -> None:
    access = access_of(request)
    secure = secure_cookies(request, access.settings)
    max_age = int(access.settings.session_hours * 3600)
    common: dict[str, Any] = {"max_age": max_age, "path": "/", "secure": secure, "samesite": "lax"}
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, user_sessions.csrf_token(session_id), **common)


def clear_session_cookies(request: Request, response: Response) -> None:
    secure = secure_cookies(request, access_of(request).settings)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(
            name, path="/", secure=secure, httponly=name == SESSION_COOKIE, samesite="lax"
        )


def record(request: Request, action: Action, **where: str | None) -> None:
    """One audit row in its own short transaction (for routes that only read); `where`:
    study, series, instance, obj, detail as `audit.record` takes them."""
    with core_of(request).writing() as session:
        record_in(session, request, action, **where)


def record_in(session: Session, request: Request, action: Action, **where: str | None) -> None:
    """One audit row in the caller's transaction (for routes that write anyway)."""
    actor = principal_of(request).actor
    audit.record(session, actor, action, at=access_of(request).clock(), **where)


def _opened(request: Request) -> Iterator[None]:
    yield  # recorded only when the route answered without raising (not for a 404)
    params = request.path_params
    query = request.query_params
    route = request.scope.get("route")
    what = route.summary if isinstance(route, APIRoute) and route.summary else None
    record(
        request,
        Action.opened,
        study=params.get("study") or query.get("studyUID"),
        series=params.get("series") or query.get("seriesUID"),
        instance=params.get("sop") or query.get("objectUID"),
        detail=what or f"{request.method} {request.url.path}",
    )


# On the routes that give out a study's, series' or instance's data (metadata, retrieve,
# WADO-URI): one audit row per request, never per frame.
Opened = Depends(_opened, scope="function")
