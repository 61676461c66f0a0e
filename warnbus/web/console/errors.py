"""The console's error pages: what went wrong, in Chinese, on every console path.

aiohttp answers an unknown path, a wrong method or an exception with English text
(`404: Not Found`, `500 Internal Server Error`); an officer on the console reads a page in
Chinese instead, with the console's frame and a way back. A client that asks for JSON (the
compose preview, scripts) gets the API's error form with the same Chinese message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from warnbus.errors import CampaignStateError, NotFoundError, WarnbusError
from warnbus.web.console import html
from warnbus.web.console.base import PREFIX, SECURITY_HEADERS, SESSION, USER

log = structlog.get_logger("warnbus.console")

#: What was not found, by the path it was looked for under (first match).
NOT_FOUND_ZH = (
    (f"{PREFIX}/campaigns/", "找不到该预警：链接有误，或该预警不在本系统中"),
    (f"{PREFIX}/drafts/", "找不到该草稿：链接有误，或草稿已不存在"),
    (f"{PREFIX}/admin/users/", "找不到该用户"),
    (f"{PREFIX}/registry/people/", "找不到该人员"),
    (f"{PREFIX}/registry/imports/", "找不到该导入预览：已过期或已应用，请重新上传"),
)
STATUS_ZH = {
    400: ("请求有误", "请求内容有误，请返回后重试"),
    403: ("无权访问", "没有访问该页面的权限"),
    404: ("页面不存在", "页面不存在：请检查链接"),
    405: ("操作不支持", "不支持该操作，请从页面上的按钮进入"),
    413: ("内容过大", "提交的内容过大"),
    500: ("系统出错",
          "系统出错，操作可能未完成：请在值守台核对后再试；如反复出现，请联系系统管理员"),
    503: ("暂不可用", "数据存储（Redis）暂不可用，操作未完成，请稍后重试"),
}
CODE = {400: "invalid", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
        413: "too_large", 500: "internal", 503: "unavailable"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ours(request: web.Request) -> bool:
    return request.path == "/" or request.path == PREFIX or request.path.startswith(
        PREFIX + "/")


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" not in accept and (
        "application/json" in accept or "X-CSRF-Token" in request.headers)


def error_response(request: web.Request, status: int, message: str = "") -> web.Response:
    """The console's answer for `status`: a page in Chinese, or the JSON error form."""
    title, default = STATUS_ZH.get(status, ("出错了", f"请求未完成（{status}）"))
    if status == 404 and not message:
        message = next((m for prefix, m in NOT_FOUND_ZH if request.path.startswith(prefix)),
                       default)
    message = message or default
    if _wants_json(request):
        return web.json_response({"error": {"code": CODE.get(status, "error"),
                                            "message": message}}, status=status)
    sess = request.get(SESSION)
    body = (f'<p class="err" id="error-message">{html.esc(message)}</p>'
            f'<p><a class="button" href="{PREFIX}/">返回值守台</a></p>')
    text = html.layout(title, body, user=request.get(USER), csrf=sess.csrf if sess else "")
    return web.Response(text=text, status=status, content_type="text/html",
                        headers=SECURITY_HEADERS)


def _secured(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Every console answer with the console's security headers, fragments included (the
    pending list and the header fragment carry the session's CSRF token: no cache may keep
    them); a handler's own values stand. The static files may be cached."""
    if resp.prepared:
        return resp
    if request.path.startswith(f"{PREFIX}/static/"):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    return resp


@web.middleware
async def console_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's security headers on every answer of its paths (outermost: the API's
    JSON refusals of a console path included)."""
    resp = await handler(request)
    return _secured(request, resp) if _ours(request) else resp


@web.middleware
async def console_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Chinese error pages for the console's paths; every other path is left as it is."""
    if not _ours(request) or request.path.endswith("/events"):
        # A live stream has sent its headers long before it can fail: nothing to replace.
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        # A handler's own text when it wrote one in Chinese (e.g. 没有此人员).
        own = e.text or ""
        said = own if any("\u4e00" <= ch <= "\u9fff" for ch in own) and len(own) < 300 else ""
        resp = error_response(request, e.status, said)
        for name in ("Retry-After", "Allow"):
            if name in e.headers:
                resp.headers[name] = e.headers[name]
        return resp
    except NotFoundError:
        return error_response(request, 404)
    except CampaignStateError as e:
        log.error("console: campaign state unreadable", path=request.path, error=e.message)
        return error_response(request, 500)
    except WarnbusError:
        raise  # a refusal with its own status and message (the API's error middleware)
    except (RedisError, ConnectionError) as e:
        log.error("console: redis unavailable", path=request.path, error=str(e))
        resp = error_response(request, 503)
        resp.headers["Retry-After"] = "5"
        return resp
    except Exception:
        log.exception("console request failed", path=request.path, method=request.method)
        return error_response(request, 500)
