"""/api/auth (sign-in, the user's own password and tokens), /api/users and /api/audit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from openpacs.accounts import Action, Role, audit, passwords, throttle, tokens, users
from openpacs.accounts import sessions as user_sessions
from openpacs.archive.models import ApiToken, AuditEvent, User
from openpacs.logs import get_logger
from openpacs.web import auth
from openpacs.web.api.deps import ReadSession, WriteSession, core_of

log = get_logger("api")
router = APIRouter(prefix="/api/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/users", tags=["users"], dependencies=[auth.AdminOnly])
audit_router = APIRouter(prefix="/api/audit", tags=["audit"], dependencies=[auth.AdminOnly])


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    username: str
    role: Role
    must_change_password: bool

    @classmethod
    def of(cls, user: User) -> Me:
        return cls(
            username=user.username,
            role=Role(user.role),
            must_change_password=user.must_change_password,
        )


@router.post(
    "/login",
    response_model=Me,
    openapi_extra=auth.PUBLIC,
    responses={401: {"description": "wrong credentials"}, 429: {"description": "locked out"}},
)
def login(body: LoginIn, request: Request, response: Response) -> Me:
    """Sign in: sets the `openpacs_session` cookie (HttpOnly) and `openpacs_csrf` (send it
    back as `X-CSRF-Token` on POST, PUT, PATCH and DELETE)."""
    user = auth.verify_password(request, body.username, body.password, via="sign-in form")
    access = auth.access_of(request)
    now = access.clock()
    with core_of(request).writing() as session:
        throttle.succeeded(session, user.username)
        users.signed_in(session, user, now)
        session_id = user_sessions.open_session(
            session, user, access.lifetime, now, auth.client_address(request)
        )
        audit.record(
            session,
            audit.Actor(user.username, auth.client_address(request)),
            Action.login,
            at=now,
            obj=f"user:{user.username}",
        )
    auth.set_session_cookies(request, response, session_id)
    log.info("%s signed in from %s", user.username, auth.client_address(request))
    return Me.of(user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, principal: auth.CurrentUser) -> Response:
    """End this session (the cookies are cleared); tokens and Basic have nothing to end."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    with core_of(request).writing() as session:
        if principal.session_id:
            user_sessions.close_session(session, principal.session_id)
        auth.record_in(session, request, Action.logout, obj=f"user:{principal.username}")
    auth.clear_session_cookies(request, response)
    return response


@router.get("/me", response_model=Me)
def me(principal: auth.CurrentUser) -> Me:
    """Who is signed in; 401 when no one."""
    assert principal.user is not None
    return Me.of(principal.user)


class PasswordIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={422: {"description": "the current password is wrong, or the new one is weak"}},
)
def change_password(body: PasswordIn, request: Request, principal: auth.CurrentUser) -> Response:
    """Change your own password. Your other sessions end; this one goes on with new cookies."""
    assert principal.user is not None
    # The current password is checked like a sign-in: wrong ones count toward the lockout.
    try:
        auth.verify_password(
            request, principal.user.username, body.current_password, via="password change"
        )
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        raise HTTPException(422, detail="the current password is wrong") from None
    access = auth.access_of(request)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    with core_of(request).writing() as session:
        user = users.get(session, principal.user.username)
        passwords.check_rules(
            body.new_password,
            user.username,
            access.settings.min_password_length,
            old=body.current_password,
        )
        users.set_password(session, user, body.new_password, must_change=False)
        auth.record_in(session, request, Action.password_changed, obj=f"user:{user.username}")
        if principal.method == "session":
            session_id = user_sessions.open_session(
                session, user, access.lifetime, access.clock(), auth.client_address(request)
            )
            auth.set_session_cookies(request, response, session_id)
    return response


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the token is for")


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(
            id=row.id, name=row.name, created_at=row.created_at, last_used_at=row.last_used_at
        )


class NewToken(BaseModel):
    id: int
    name: str
    token: str = Field(description="Shown this once: send it as `Authorization: Bearer ...`")


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(principal: auth.CurrentUser, session: ReadSession) -> list[TokenOut]:
    """Your personal API tokens (never the tokens themselves)."""
    assert principal.user is not None
    return [TokenOut.of(row) for row in tokens.list_tokens(session, principal.user)]


@router.post("/tokens", response_model=NewToken, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenIn, request: Request, principal: auth.CurrentUser, session: WriteSession
) -> NewToken:
    """A new personal API token with your role; the answer is the only time it is shown."""
    assert principal.user is not None
    row, token = tokens.create(session, principal.user, body.name, auth.access_of(request).clock())
    auth.record_in(session, request, Action.token_created, obj=f"token:{row.id}", detail=row.name)
    return NewToken(id=row.id, name=row.name, token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(
    token_id: int, request: Request, principal: auth.CurrentUser, session: WriteSession
) -> Response:
    """Revoke one of your tokens: it stops working at once."""
    assert principal.user is not None
    row = tokens.delete_token(session, principal.user, token_id)
    auth.record_in(session, request, Action.token_deleted, obj=f"token:{row.id}", detail=row.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- users (admin) ------------------------------------------------------------------------------


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(max_length=1024)
    role: Role
    must_change_password: bool = Field(
        True, description="Ask for a new password at first sign-in (false for a script's user)"
    )


class UserChange(BaseModel):
    role: Role | None = None
    password: str | None = Field(
        None, max_length=1024, description="A new password, to be changed at next sign-in"
    )
    disabled: bool | None = None


class UserOut(BaseModel):
    username: str
    role: Role
    disabled: bool
    must_change_password: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            role=Role(user.role),
            disabled=user.disabled,
            must_change_password=user.must_change_password,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


def _min_length(request: Request) -> int:
    return auth.access_of(request).settings.min_password_length


@users_router.get("", response_model=list[UserOut])
def list_users(session: ReadSession) -> list[UserOut]:
    return [UserOut.of(user) for user in users.list_users(session)]


@users_router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def add_user(body: UserIn, request: Request, session: WriteSession) -> UserOut:
    """A new user; 409 when the name is taken, 422 when the password breaks a rule."""
    try:
        user = users.create(
            session,
            body.username,
            body.password,
            body.role,
            min_length=_min_length(request),
            must_change_password=body.must_change_password,
        )
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    auth.record_in(
        session, request, Action.user_created, obj=f"user:{user.username}", detail=body.role
    )
    return UserOut.of(user)


@users_router.put("/{username}", response_model=UserOut)
def change_user(
    username: str, body: UserChange, request: Request, session: WriteSession
) -> UserOut:
    """Change a user's role, reset the password (to be changed at next sign-in), or disable
    (their sessions end); 409 when it would leave no enabled admin."""
    user = users.update_user(
        session,
        username,
        role=body.role,
        password=body.password,
        disabled=body.disabled,
        min_length=_min_length(request),
    )
    changed = [name for name in ("role", "disabled") if getattr(body, name) is not None]
    if body.password is not None:
        changed.append("password reset")
    auth.record_in(
        session, request, Action.user_changed, obj=f"user:{username}", detail=", ".join(changed)
    )
    return UserOut.of(user)


@users_router.delete("/{username}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(username: str, request: Request, session: WriteSession) -> Response:
    """Delete a user with their sessions and tokens; 409 for the last enabled admin."""
    users.delete_user(session, username)
    auth.record_in(session, request, Action.user_deleted, obj=f"user:{username}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- audit (admin) ------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    username: str | None
    address: str | None
    action: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    sop_instance_uid: str | None
    object: str | None
    detail: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditOut:
        return cls(
            id=event.id,
            at=event.at,
            username=event.username,
            address=event.address,
            action=event.action,
            study_instance_uid=event.study_instance_uid,
            series_instance_uid=event.series_instance_uid,
            sop_instance_uid=event.sop_instance_uid,
            object=event.object,
            detail=event.detail,
        )


class AuditPage(BaseModel):
    total: int
    items: list[AuditOut]


@audit_router.get("", response_model=AuditPage)
def list_audit(
    session: ReadSession,
    user: Annotated[str | None, Query(description="user name")] = None,
    action: Annotated[str | None, Query(description="e.g. login, opened, sent, deleted")] = None,
    study: Annotated[str | None, Query(description="Study Instance UID")] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[dt.datetime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    """The audit log, newest first."""
    filters = audit.Filters(user, action, study, _utc(since), _utc(until))
    events, total = audit.search(session, filters, limit, offset)
    return AuditPage(total=total, items=[AuditOut.of(event) for event in events])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
