"""Sign-in and sign-out, and the admin pages: users and console settings."""

from __future__ import annotations

import math
import secrets
from typing import Any

import msgspec
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from warnbus.web.console import html
from warnbus.web.console.auth import (
    ROLES,
    AdminAction,
    AdminEntry,
    User,
    audit,
    audit_log,
    name_problem,
)
from warnbus.web.console.base import (
    COOKIE,
    DEVICE_COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleSettings,
    back,
    console,
    flash,
    form,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.html import csrf_field, esc
from warnbus.web.console.passwords import password_problem
from warnbus.web.console.throttle import DEVICE_TTL_S, client_address

log = structlog.get_logger("warnbus.console")
LOGIN_CSRF = "wb_login_csrf"


def _safe_next(value: str) -> str:
    # Only paths of the console: never an open redirect to another site.
    return value if value.startswith(f"{PREFIX}/") and not value.startswith("//") else f"{PREFIX}/"


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


async def login_page(request: web.Request, error: str = "", *, status: int = 401,
                     retry_after: int = 0) -> web.Response:
    # Double submit: the form echoes the cookie (kept across retries of the same form).
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(16)
    nxt = _safe_next(request.query.get("next", ""))
    err = f'<p class="err">{esc(error)}</p>' if error else ""
    body = (f'{err}<form method="post" action="{PREFIX}/login" class="card narrow">'
            f'<input type="hidden" name="_csrf" value="{token}">'
            f'<input type="hidden" name="next" value="{esc(nxt)}">'
            '<label>用户名<input name="username" autocomplete="username" required autofocus>'
            '</label>'
            '<label>密码<input name="password" type="password" autocomplete="current-password" '
            'required></label><button class="primary">登录</button></form>')
    headers = dict(SECURITY_HEADERS)
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    resp = web.Response(text=html.bare("登录", body), content_type="text/html",
                        status=status if error else 200, headers=headers)
    resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="Strict", path=f"{PREFIX}/login",
                    secure=_secure(request))
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie, data.get("_csrf", "")):
        return web.Response(status=403, text=html.bare("登录", '<p class="err">表单已失效，'
                                                               '请刷新后重新登录</p>'),
                            content_type="text/html")
    con = console(request)
    res = await con.sign_in(data.get("username", ""), data.get("password", ""),
                            client_address(request.remote), request.cookies.get(DEVICE_COOKIE, ""))
    if res.busy:
        return await login_page(request, "登录请求过多，请稍后再试", status=503, retry_after=2)
    if res.refused is not None:
        return await login_page(request, res.refused.message(), status=429,
                                retry_after=max(1, math.ceil(res.refused.wait_s)))
    if res.user is None:
        return await login_page(request, "用户名或密码错误（多次错误将暂时限制登录）")
    resp = web.HTTPSeeOther(_safe_next(data.get("next", "")))
    resp.set_cookie(COOKIE, res.sid, httponly=True, samesite="Strict", path=PREFIX,
                    secure=_secure(request), max_age=con.sessions.ttl_s)
    resp.del_cookie(LOGIN_CSRF, path=f"{PREFIX}/login")
    resp.set_cookie(DEVICE_COOKIE, res.device, httponly=True, samesite="Strict",
                    path=f"{PREFIX}/login", secure=_secure(request), max_age=DEVICE_TTL_S)
    raise resp


@requires()
async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out everywhere: every session of the user ends (a device left signed in, a copied
    cookie), and their live boards stop within seconds."""
    con = console(request)
    await con.users.end_sessions(user_of(request).name)
    await con.sessions.drop(request.cookies.get(COOKIE, ""))
    resp = web.HTTPSeeOther(f"{PREFIX}/login")
    resp.del_cookie(COOKIE, path=PREFIX)
    raise resp


def _role_boxes(selected: tuple[str, ...]) -> str:
    return "".join(
        f'<label class="inline"><input type="checkbox" name="role" value="{r}"'
        f'{" checked" if r in selected else ""}>{html.ROLE_ZH[r]}</label>' for r in ROLES)


@requires("admin")
async def admin_page(request: web.Request) -> web.Response:
    con = console(request)
    csrf = session_of(request).csrf
    rows = []
    users = await con.users.all()
    failures = await con.guard.failures([u.name for u in users])
    for u in users:
        rows.append([
            esc(u.name), esc(u.display),
            f'<form method="post" action="{PREFIX}/admin/users/{esc(u.name)}" class="row">'
            f'{csrf_field(csrf)}{_role_boxes(u.roles)}'
            '<input name="password" type="password" placeholder="新密码（不改则留空）" '
            'autocomplete="new-password">'
            f'<label class="inline"><input type="checkbox" name="disabled" value="1"'
            f'{" checked" if u.disabled else ""}>停用</label><button>保存</button></form>',
            _sign_in_state(u.name, failures.get(u.name, 0), con.guard.limits.window_s, csrf)])
    shown = {u.name: u.display or u.name for u in users}
    entries = "".join(  # display names (姓名), with the account's user name
        f'<li>{html.bj(e.at)} {esc(shown.get(e.by, e.by))} {ADMIN_ACTION_ZH[e.action]} '
        f'{esc(shown.get(e.user, e.user))}（{esc(e.user)}）'
        f'{"：" + esc(e.detail) if e.detail else ""}</li>'
        for e in await audit_log(con.app.ctx.redis))
    st = await con.settings()
    levels = "".join(
        f'<label class="inline"><input type="checkbox" name="approval" value="{lv}"'
        f'{" checked" if lv in st.approval_levels else ""}>{html.LEVEL_ZH[lv]}</label>'
        for lv in html.LEVEL_ZH)
    conf = "、".join(html.LEVEL_ZH[lv] for lv in con.default_approval_levels) or "无"
    levels += (f'<label class="inline"><input type="checkbox" name="approval_default" value="1"'
               f'{" checked" if await con.approval_from_config() else ""}>'
               f'使用配置文件的默认值（[console] approval_levels：{conf}）</label>')
    msg = flash(request)
    body = (
        (f'<p class="ok">{esc(msg)}</p>' if msg else "")
        + "<h2>用户</h2>" + html.table(["用户名", "姓名", "角色 / 密码", "登录"], rows)
        + f'<details><summary>管理记录</summary><ul class="audit">{entries or "<li>无</li>"}</ul>'
        '</details>'
        + f'<h2>新建用户</h2><form method="post" action="{PREFIX}/admin/users" class="card">'
        f'{csrf_field(csrf)}<label>用户名<input name="username" required '
        f'pattern="[A-Za-z0-9_.-]{{2,32}}"></label>'
        '<label>姓名<input name="display" required></label>'
        '<label>初始密码<input name="password" type="password" required minlength="10" '
        f'autocomplete="new-password"></label><div>{_role_boxes(("drafter",))}</div>'
        '<button class="primary">创建</button></form>'
        f'<h2>发布设置</h2><form method="post" action="{PREFIX}/admin/settings" class="card">'
        f'{csrf_field(csrf)}<div>需要第二人审批的级别：{levels}</div>'
        f'<label>短信单价（元/条）<input name="sms_price" value="{st.sms_price}" '
        'inputmode="decimal"></label>'
        f'<label>语音单价（元/分钟）<input name="voice_price" value="{st.voice_price}" '
        'inputmode="decimal"></label>'
        f'<label>发布单位名称<input name="sender_name" value="{esc(st.sender_name)}" '
        'placeholder="默认：县名+应急管理局"></label>'
        f'<label>发布单位编码（14位）<input name="org_code" value="{esc(st.org_code)}" '
        f'pattern="\\d{{14}}" placeholder="默认：县代码+00000000"></label>'
        '<button class="primary">保存设置</button></form>')
    return page(request, "系统管理", body, active="admin")


def _roles(data: MultiDictProxy[Any]) -> tuple[str, ...]:
    return tuple(r for r in ROLES if r in data.getall("role", []))


def _sign_in_state(name: str, failures: int, window_s: float, csrf: str) -> str:
    """Recent failed sign-ins of an account and the admin's unlock button."""
    state = f"{window_s / 60:.0f}分钟内失败{failures}次" if failures else "正常"
    return (f'<span class="muted">{state}</span><form method="post" class="inline" '
            f'action="{PREFIX}/admin/users/{esc(name)}/unlock">{csrf_field(csrf)}'
            '<button data-confirm="解除该账户的登录锁定（所有地址）？">解除锁定</button></form>')


ADMIN_ACTION_ZH = {AdminAction.CREATE: "创建用户", AdminAction.UPDATE: "修改用户",
                   AdminAction.UNLOCK: "解除登录锁定"}


async def _audit(request: web.Request, action: AdminAction, name: str, detail: str = "") -> None:
    con = console(request)
    entry = AdminEntry(con.app.ctx.clock.now(), user_of(request).name, action, name, detail)
    await audit(con.app.ctx.redis, entry)
    log.info("console admin action", by=entry.by, action=action, user=name, detail=detail)


@requires("admin")
async def admin_create_user(request: web.Request) -> web.StreamResponse:
    data = await request.post()
    f = await form(request)
    name, password = f.get("username", "").strip(), f.get("password", "")
    problem = name_problem(name) or password_problem(password)
    if problem:
        raise back(f"{PREFIX}/admin", problem)
    roles = _roles(data)
    created = await console(request).users.create(name, f.get("display", name), roles, password)
    if created:
        await _audit(request, AdminAction.CREATE, name, "、".join(html.ROLE_ZH[r] for r in roles))
    raise back(f"{PREFIX}/admin", f"{'已创建 ' + name if created else '用户名已存在'}")


async def _existing(request: web.Request) -> User:
    user = await console(request).users.get(request.match_info["name"])
    if user is None:
        raise web.HTTPNotFound(text="no such user")
    return user


@requires("admin")
async def admin_update_user(request: web.Request) -> web.StreamResponse:
    """Roles, a new password, enabled or not. A new password or a disable ends every session
    of the user (their live boards too); so does enabling again what was disabled."""
    con = console(request)
    user = await _existing(request)
    name = user.name
    data = await request.post()
    f = await form(request)
    roles = _roles(data)
    if name == user_of(request).name and "admin" not in roles:
        raise back(f"{PREFIX}/admin", "不能取消自己的管理权限")
    pw, changes = user.pw, []
    if f.get("password"):
        problem = password_problem(f["password"])
        if problem:
            raise back(f"{PREFIX}/admin", f"{problem}")
        pw = await con.users.hasher.hash(f["password"])
        changes.append("重设密码")
    disabled = f.get("disabled") == "1"
    if disabled != user.disabled:
        changes.append("停用" if disabled else "启用")
    if roles != user.roles:
        changes.append("角色：" + ("、".join(html.ROLE_ZH[r] for r in roles) or "无"))
    await con.users.put(User(user.name, user.display, roles, pw, disabled))
    if pw != user.pw or disabled != user.disabled:
        await con.users.end_sessions(name)
    if changes:
        await _audit(request, AdminAction.UPDATE, name, "，".join(changes))
    raise back(f"{PREFIX}/admin", f"已保存 {name}")


@requires("admin")
async def admin_unlock_user(request: web.Request) -> web.StreamResponse:
    """Forget an account's failed sign-ins and lift its locks from every address."""
    user = await _existing(request)
    removed = await console(request).guard.unlock(user.name)
    await _audit(request, AdminAction.UNLOCK, user.name, f"清除{removed}条失败记录")
    raise back(f"{PREFIX}/admin", f"已解除 {user.name} 的登录锁定")


@requires("admin")
async def admin_settings(request: web.Request) -> web.StreamResponse:
    con = console(request)
    data = await request.post()
    f = await form(request)
    try:
        st = ConsoleSettings(
            approval_levels=tuple(lv for lv in html.LEVEL_ZH if lv in data.getall("approval", [])),
            sms_price=float(f.get("sms_price", "0")), voice_price=float(f.get("voice_price", "0")),
            sender_name=f.get("sender_name", "").strip(), org_code=f.get("org_code", "").strip())
    except ValueError:
        raise back(f"{PREFIX}/admin", "未保存：单价必须是数字") from None
    if not all(math.isfinite(p) and 0 <= p <= 100 for p in (st.sms_price, st.voice_price)):
        raise back(f"{PREFIX}/admin", "未保存：单价必须在0到100元之间")
    if st.org_code and not (len(st.org_code) == 14 and st.org_code.isdigit()):
        raise back(f"{PREFIX}/admin", "未保存：发布单位编码必须是14位数字")
    old = await con.settings()
    from_config = f.get("approval_default") == "1"
    notes = settings_notes(old, st, from_config, con.default_approval_levels)
    if from_config:
        st = msgspec.structs.replace(st, approval_levels=con.default_approval_levels)
    await con.save_settings(msgspec.structs.replace(st, sse_interval_s=old.sse_interval_s),
                            approval_from_config=from_config)
    raise back(f"{PREFIX}/admin", "设置已保存" + "".join(f"；{n}" for n in notes))


def settings_notes(old: ConsoleSettings, new: ConsoleSettings, from_config: bool,
                   config_levels: tuple[str, ...]) -> list[str]:
    """What saving `new` does not apply, or applies only from now on: said, never silent."""
    notes = []

    def zh(levels: tuple[str, ...]) -> str:
        return "、".join(html.LEVEL_ZH[lv] for lv in levels) or "无"

    if from_config and set(new.approval_levels) != set(config_levels):
        notes.append(f"已勾选使用配置文件的默认值，审批级别按配置（{zh(config_levels)}），"
                     f"所选的（{zh(new.approval_levels)}）未采用")
    elif set(new.approval_levels) != set(old.approval_levels) or from_config:
        notes.append("审批级别对此后提交的草稿生效，已在等待审批的草稿仍需审批")
    if (new.sender_name, new.org_code) != (old.sender_name, old.org_code):
        notes.append("发布单位名称和编码用于此后发出的预警、更新和解除，已发出的消息不变")
    if (new.sms_price, new.voice_price) != (old.sms_price, old.voice_price):
        notes.append("单价只用于预览中的费用估算")
    return notes
