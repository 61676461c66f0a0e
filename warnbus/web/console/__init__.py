"""The warning officer's console: sign in, compose and approve alerts, watch the 叫应 live.

Mounted by `setup_console(web_app, app)` under `/console/` (the root `/` redirects there).
Every route is in `ROUTES` with the roles it needs (empty: any signed-in user); the tests
walk this table to check that each route refuses the wrong role.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from warnbus.runtime.app import App
from warnbus.web.console import (
    errors,
    feedback,
    pages_act,
    pages_auth,
    pages_board,
    pages_compose,
    pages_desk,
    pages_door,
    pages_drafts,
    pages_duty,
    pages_grid,
    pages_registry,
    pages_registry_io,
    record_print,
    records,
)
from warnbus.web.console.auth import Sessions, Users, ensure_admin
from warnbus.web.console.base import CONSOLE, PREFIX, Console, Handler
from warnbus.web.console.notify import DutyNotifier
from warnbus.web.console.passwords import PasswordHasher

STATIC = Path(__file__).with_name("static")

#: (method, path under /console, handler). Roles are on the handler (`handler.roles`).
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/logout", pages_auth.logout),
    ("GET", "/admin", pages_auth.admin_page),
    ("POST", "/admin/users", pages_auth.admin_create_user),
    ("POST", "/admin/users/{name}", pages_auth.admin_update_user),
    ("POST", "/admin/users/{name}/unlock", pages_auth.admin_unlock_user),
    ("POST", "/admin/settings", pages_auth.admin_settings),
    ("GET", "/", pages_desk.index),
    ("GET", "/events", pages_desk.desk_events),
    ("GET", "/campaigns/{cid}", pages_board.board_page),
    ("GET", "/campaigns/{cid}/events", pages_board.events),
    ("GET", "/campaigns/{cid}/chase", pages_board.chase_fragment),
    ("GET", "/campaigns/{cid}/head", pages_board.head_fragment),
    ("GET", "/campaigns/{cid}/grids/{gid}", pages_grid.grid_page),
    ("POST", "/campaigns/{cid}/ack", pages_act.manual_ack),
    ("POST", "/campaigns/{cid}/door", pages_act.door),
    ("POST", "/campaigns/{cid}/door/result", pages_act.door_result),
    ("POST", "/campaigns/{cid}/stop", pages_act.stop),
    ("POST", "/campaigns/{cid}/cancel", pages_compose.cancel_submit),
    ("GET", "/campaigns/{cid}/record.csv", records.record_csv),
    ("GET", "/campaigns/{cid}/print", record_print.print_page),
    ("POST", "/campaigns/{cid}/feedback", feedback.enter_feedback),
    ("GET", "/campaigns/{cid}/feedback.csv", feedback.feedback_csv_download),
    ("GET", "/compose", pages_compose.compose_page),
    ("GET", "/compose/defaults", pages_compose.compose_defaults),
    ("POST", "/compose/preview", pages_compose.compose_preview),
    ("POST", "/compose", pages_compose.compose_submit),
    ("GET", "/drafts", pages_drafts.drafts_page),
    ("GET", "/drafts/{id}", pages_drafts.draft_page),
    ("POST", "/drafts/{id}/approve", pages_drafts.draft_approve),
    ("POST", "/drafts/{id}/reject", pages_drafts.draft_reject),
    ("POST", "/drafts/{id}/withdraw", pages_drafts.draft_withdraw),
    ("GET", "/drafts/{id}/edit", pages_drafts.draft_edit),
    ("GET", "/records", records.records_page),
    ("GET", "/registry", pages_registry.registry_page),
    ("GET", "/registry/grids", pages_registry.grids_page),
    ("GET", "/registry/people", pages_registry.people_page),
    ("GET", "/registry/devices", pages_registry.devices_page),
    ("GET", "/registry/export.zip", pages_registry.export_zip),
    ("POST", "/registry/import", pages_registry.import_zip),
    ("GET", "/registry/template.xlsx", pages_registry_io.template),
    ("GET", "/registry/export.xlsx", pages_registry_io.export_xlsx),
    ("POST", "/registry/upload", pages_registry_io.upload),
    ("GET", "/registry/imports/{id}", pages_registry_io.preview_page),
    ("POST", "/registry/imports/{id}/apply", pages_registry_io.apply_import),
    ("GET", "/registry/history", pages_registry_io.history_page),
    ("GET", "/registry/people/{id}", pages_registry_io.person_page),
    ("POST", "/registry/people/{id}", pages_registry_io.person_save),
    ("GET", "/duty", pages_duty.duty_page),
    ("POST", "/duty/change", pages_duty.duty_change),
    ("POST", "/duty/rosters/{id}/approve", pages_duty.roster_approve),
)


async def _root(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


async def _bare(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def setup_console(web_app: web.Application, app: App) -> None:
    """Mount the console on the engine's aiohttp application."""
    web_app[CONSOLE] = Console(app, Users(app.ctx.redis, PasswordHasher()),
                               Sessions(app.ctx.redis))
    web_app.middlewares.append(errors.console_errors)  # innermost: Chinese error pages
    web_app.middlewares.insert(0, errors.console_headers)  # outermost: on every answer
    r = web_app.router
    r.add_get("/", _root)
    r.add_get(PREFIX, _bare)
    r.add_get(f"{PREFIX}/login", pages_auth.login_page)
    r.add_post(f"{PREFIX}/login", pages_auth.login)
    r.add_static(f"{PREFIX}/static", STATIC, append_version=False)
    # The page of a person sent door to door: public, its signed link is the credential.
    r.add_get("/door/{token}", pages_door.door_link_page)
    r.add_post("/door/{token}", pages_door.door_link_post)
    for method, path, handler in ROUTES:
        r.add_route(method, PREFIX + path, handler)
    if app.settings.console.notify_webhook:
        web_app.cleanup_ctx.append(lambda _web_app: _duty_notices(app))


async def _duty_notices(app: App) -> AsyncIterator[None]:
    """Tell the duty group of each new message and draft while the web app runs."""
    cfg = app.settings.console
    notifier = DutyNotifier(app.ctx, str(cfg.notify_webhook), cfg.notify_mention,
                            app.links.base_url, app.ctx.clock.now())
    task = asyncio.create_task(notifier.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await notifier.aclose()


__all__ = ["ROUTES", "ensure_admin", "setup_console"]
