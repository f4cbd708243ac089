"""The one access check for the HTTP routes that give out or take in images.

Until the console has users: clients on this machine come in freely (`allow_loopback`), every
other client gives the credentials of openpacs.toml, HTTP Basic (`username`/`password`) or a
bearer token (`token`). A request relayed by a proxy on this machine that names another client
in X-Forwarded-For (or Forwarded) is that other client's, so it needs credentials too: putting
nginx in front does not open the archive to the network.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from fastapi import HTTPException, Request

from openpacs.config import DicomWebSettings

CHALLENGE = {"WWW-Authenticate": 'Basic realm="openpacs", charset="UTF-8"'}


def require_access(request: Request) -> None:
    """FastAPI dependency: returns when the client may proceed, else 401 with a challenge."""
    settings: DicomWebSettings = request.app.state.core.settings.dicomweb
    if settings.allow_loopback and _local(request):
        return
    if _credentials_ok(request.headers.get("authorization"), settings):
        return
    raise HTTPException(
        status_code=401,
        detail="credentials required: HTTP Basic or a bearer token (see [dicomweb] settings)",
        headers=CHALLENGE,
    )


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return host.strip().lower() == "localhost"


def _local(request: Request) -> bool:
    client = request.client
    if client is None or not _is_loopback(client.host):
        return False
    relayed = [
        hop.strip()
        for value in request.headers.getlist("x-forwarded-for")
        for hop in value.split(",")
    ]
    for value in request.headers.getlist("forwarded"):
        for element in value.replace(";", ",").split(","):
            name, _, hop = element.strip().partition("=")
            if name.strip().lower() == "for":
                relayed.append(hop.strip().strip('"'))
    return all(_is_loopback(hop.split("%")[0]) for hop in relayed if hop)


def _credentials_ok(header: str | None, settings: DicomWebSettings) -> bool:
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and settings.token:
        return hmac.compare_digest(value.encode(), settings.token.encode())
    if scheme == "basic" and settings.username:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, colon, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), settings.username.encode())
        password_ok = hmac.compare_digest(password.encode(), settings.password.encode())
        return bool(colon) and user_ok and password_ok
    return False
