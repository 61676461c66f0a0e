"""Sign-in and sign-out, and the admin pages: users and console settings."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from warnbus.web.console import html
from warnbus.web.console.auth import ROLES, User, hash_password, password_problem
from warnbus.web.console.base import (
    COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleSettings,
    back,
    console,
    form,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.html import csrf_field, esc

LOGIN_CSRF = "wb_login_csrf"


def _safe_next(value: str) -> str:
    # Only paths of the console: never an open redirect to another site.
    return value if value.startswith(f"{PREFIX}/") and not value.startswith("//") else f"{PREFIX}/"


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


async def login_page(request: web.Request, error: str = "") -> web.Response:
    # Double submit: the form echoes the cookie (kept across retries of the same form).
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(16)
    nxt = _safe_next(request.query.get("next", ""))
    err = f'<p class="err">{esc(error)}</p>' if error else ""
    body = (f'{err}<form method="post" action="{PREFIX}/login" class="card narrow">'
            f'<input type="hidden" name="_csrf" value="{token}">'
            f'<input type="hidden" name="next" value="{esc(nxt)}">'
            '<label>用户名<input name="username" autocomplete="username" required autofocus></label>'
            '<label>密码<input name="password" type="password" autocomplete="current-password" '
            'required></label><button class="primary">登录</button></form>')
    resp = web.Response(text=html.bare("登录", body), content_type="text/html",
                        status=401 if error else 200, headers=SECURITY_HEADERS)
    resp.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="Strict", path=f"{PREFIX}/login",
                    secure=_secure(request))
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie, data.get("_csrf", "")):
        return web.Response(status=403, text=html.bare("登录", '<p class="err">表单已失效，请刷新后重新登录</p>'),
                            content_type="text/html")
    con = console(request)
    user = await con.users.authenticate(data.get("username", ""), data.get("password", ""))
    if user is None:
        return await login_page(request, "用户名或密码错误（多次错误将暂时锁定）")
    sid, _sess = await con.sessions.create(user.name)
    resp = web.HTTPSeeOther(_safe_next(data.get("next", "")))
    resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path=PREFIX,
                    secure=_secure(request), max_age=con.sessions.ttl_s)
    resp.del_cookie(LOGIN_CSRF, path=f"{PREFIX}/login")
    raise resp


@requires()
async def logout(request: web.Request) -> web.StreamResponse:
    await console(request).sessions.drop(request.cookies.get(COOKIE, ""))
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
    for u in await con.users.all():
        rows.append([
            esc(u.name), esc(u.display),
            f'<form method="post" action="{PREFIX}/admin/users/{esc(u.name)}" class="row">'
            f'{csrf_field(csrf)}{_role_boxes(u.roles)}'
            '<input name="password" type="password" placeholder="新密码（不改则留空）" '
            'autocomplete="new-password">'
            f'<label class="inline"><input type="checkbox" name="disabled" value="1"'
            f'{" checked" if u.disabled else ""}>停用</label><button>保存</button></form>'])
    st = await con.settings()
    levels = "".join(
        f'<label class="inline"><input type="checkbox" name="approval" value="{lv}"'
        f'{" checked" if lv in st.approval_levels else ""}>{html.LEVEL_ZH[lv]}</label>'
        for lv in html.LEVEL_ZH)
    conf = "、".join(html.LEVEL_ZH[lv] for lv in con.default_approval_levels) or "无"
    levels += (f'<label class="inline"><input type="checkbox" name="approval_default" value="1"'
               f'{" checked" if await con.approval_from_config() else ""}>'
               f'使用配置文件的默认值（[console] approval_levels：{conf}）</label>')
    msg = request.query.get("msg", "")
    body = (
        (f'<p class="ok">{esc(msg)}</p>' if msg else "")
        + "<h2>用户</h2>" + html.table(["用户名", "姓名", "角色 / 密码"], rows)
        + f'<h2>新建用户</h2><form method="post" action="{PREFIX}/admin/users" class="card">'
        f'{csrf_field(csrf)}<label>用户名<input name="username" required pattern="[A-Za-z0-9_.-]{{2,32}}"></label>'
        '<label>姓名<input name="display" required></label>'
        '<label>初始密码<input name="password" type="password" required minlength="10" '
        f'autocomplete="new-password"></label><div>{_role_boxes(("drafter",))}</div>'
        '<button class="primary">创建</button></form>'
        f'<h2>发布设置</h2><form method="post" action="{PREFIX}/admin/settings" class="card">'
        f'{csrf_field(csrf)}<div>需要第二人审批的级别：{levels}</div>'
        f'<label>短信单价（元/条）<input name="sms_price" value="{st.sms_price}" inputmode="decimal"></label>'
        f'<label>语音单价（元/分钟）<input name="voice_price" value="{st.voice_price}" inputmode="decimal"></label>'
        f'<label>发布单位名称<input name="sender_name" value="{esc(st.sender_name)}" placeholder="默认：县名+应急管理局"></label>'
        f'<label>发布单位编码（14位）<input name="org_code" value="{esc(st.org_code)}" pattern="\\d{{14}}" placeholder="默认：县代码+00000000"></label>'
        '<button class="primary">保存设置</button></form>')
    return page(request, "系统管理", body, active="admin")


def _roles(data: MultiDictProxy[Any]) -> tuple[str, ...]:
    return tuple(r for r in ROLES if r in data.getall("role", []))


@requires("admin")
async def admin_create_user(request: web.Request) -> web.StreamResponse:
    data = await request.post()
    f = await form(request)
    name, password = f.get("username", "").strip(), f.get("password", "")
    problem = password_problem(password)
    if problem or not name:
        raise back(f"{PREFIX}/admin", f"{problem or '请填写用户名'}")
    created = await console(request).users.create(name, f.get("display", name), _roles(data),
                                                  password)
    raise back(f"{PREFIX}/admin", f"{'已创建 ' + name if created else '用户名已存在'}")


@requires("admin")
async def admin_update_user(request: web.Request) -> web.StreamResponse:
    con = console(request)
    name = request.match_info["name"]
    user = await con.users.get(name)
    if user is None:
        raise web.HTTPNotFound(text="no such user")
    data = await request.post()
    f = await form(request)
    roles = _roles(data)
    if name == user_of(request).name and "admin" not in roles:
        raise back(f"{PREFIX}/admin", "不能取消自己的管理权限")
    pw = user.pw
    if f.get("password"):
        problem = password_problem(f["password"])
        if problem:
            raise back(f"{PREFIX}/admin", f"{problem}")
        pw = hash_password(f["password"])
    await con.users.put(User(user.name, user.display, roles, pw, f.get("disabled") == "1"))
    raise back(f"{PREFIX}/admin", f"已保存 {name}")


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
        raise back(f"{PREFIX}/admin", "单价必须是数字") from None
    if st.org_code and not (len(st.org_code) == 14 and st.org_code.isdigit()):
        raise back(f"{PREFIX}/admin", "发布单位编码必须是14位数字")
    old = await con.settings()
    from_config = f.get("approval_default") == "1"
    if from_config:
        st = msgspec.structs.replace(st, approval_levels=con.default_approval_levels)
    await con.save_settings(msgspec.structs.replace(st, sse_interval_s=old.sse_interval_s),
                            approval_from_config=from_config)
    raise back(f"{PREFIX}/admin", "设置已保存")
