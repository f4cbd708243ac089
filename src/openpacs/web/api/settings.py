"""/api/settings: the configuration as the Settings page shows and changes it (admins only).

A change is validated as a whole (422 naming each bad key), saved to `openpacs.toml`
(documented, atomically, the old file kept as `.bak`), then taken by the running server where
it can be without a restart: listeners restart in place, log levels and nodes apply at once;
the answer lists what waits for a restart and what the environment overrides.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from openpacs import config, config_edit, logs
from openpacs.accounts.audit import Action
from openpacs.web import auth
from openpacs.web.api.deps import ServicesDep, core_of

router = APIRouter(prefix="/api/settings", tags=["settings"], dependencies=[auth.AdminOnly])
log = logs.get_logger("api")


class SettingsOut(BaseModel):
    file: str | None
    settings: dict[str, Any]
    overridden_by_environment: list[str]


class Failure(BaseModel):
    key: str
    reason: str


class ChangeOut(BaseModel):
    saved_to: str
    changed: list[str]
    applied: list[str]
    restart_required: list[str]
    failed: list[Failure]
    overridden_by_environment: list[str]


@router.get("", response_model=SettingsOut)
def show(request: Request, services: ServicesDep) -> SettingsOut:
    """The settings in effect (secrets hidden), the file changes are saved to, and the keys an
    OPENPACS_* environment variable sets (a change to those in the file has no effect)."""
    effective = core_of(request).settings
    data = config_edit.masked(effective)
    keys = [f"{s}.{k}" for s, v in data.items() if isinstance(v, dict) for k in v]
    return SettingsOut(
        file=str(services.settings_file) if services.settings_file else None,
        settings=data,
        overridden_by_environment=config_edit.environment_overrides(keys),
    )


@router.get("/schema")
def schema() -> dict[str, Any]:
    """JSON Schema of the settings: each key's type, bounds, default and description, for
    forms that validate before sending."""
    return config.Settings.model_json_schema()


@router.put(
    "",
    response_model=ChangeOut,
    responses={
        409: {"description": "this server has no file to save settings to"},
        422: {"description": "a value is invalid; each bad key is named"},
    },
)
def change(
    request: Request,
    services: ServicesDep,
    body: dict[str, Any] = Body(  # noqa: B008 (FastAPI's way to take a free-form JSON body)
        ..., examples=[{"qrscp": {"ae_title": "PACS_QR", "port": 11114}}]
    ),
) -> ChangeOut | JSONResponse:
    """Change some settings: `{section: {key: value}}` (an array of tables such as `nodes` is
    replaced whole). Saved to the file, then applied where possible without a restart."""
    target = services.settings_file
    if target is None:
        detail = "this server was started without a settings file to save to; restart it"
        return JSONResponse({"error": "NoSettingsFile", "detail": detail}, status_code=409)
    base = config_edit.file_settings(target)
    try:
        wanted = config_edit.apply_change(base, body)
    except config_edit.InvalidChange as exc:
        log.warning("PUT /api/settings -> 422: %s", exc)
        errors = [{"key": key, "message": message} for key, message in exc.errors]
        return JSONResponse({"error": "InvalidSettings", "detail": errors}, status_code=422)
    changed = config_edit.changed_keys(base, wanted)
    config_edit.save(wanted, target)
    effective = config.load(target)
    if services.apply_settings is not None:
        report = services.apply_settings(effective)
    else:
        report = config_edit.SettingsReport(restart_required=list(changed))
    auth.record(request, Action.changed, obj="settings", detail=", ".join(changed) or "nothing")
    log.info("settings saved to %s: %s", target, ", ".join(changed) or "no change")
    return ChangeOut(
        saved_to=str(target),
        changed=changed,
        applied=report.applied,
        restart_required=report.restart_required,
        failed=[Failure(key=key, reason=reason) for key, reason in report.failed],
        overridden_by_environment=config_edit.environment_overrides(changed),
    )
