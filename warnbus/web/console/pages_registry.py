"""Registry pages: grids, people, devices (with speaker status); export and import.

An import is validated in full (the same checks as `warnbus registry validate`) and staged
under the data directory; the running engine keeps its registry until it is restarted on the
staged one, so a bad file can never take a live county down.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from warnbus.domain.models import mask_phone
from warnbus.domain.states import DeviceState
from warnbus.registry import dump_registry, read_registry, validate_registry
from warnbus.registry_io.export import masked
from warnbus.runtime import services
from warnbus.state.devices import DeviceRecord, DeviceStatusBook
from warnbus.web.console import html, pages_registry_io
from warnbus.web.console.base import (
    PREFIX,
    back,
    console,
    flash,
    json_reply,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.html import PERSON_ROLE_ZH, csrf_field, esc

FILES = ("regions.json", "grids.json", "persons.json", "devices.json")
LIMIT = 300


def _nav(active: str) -> str:
    links = (("", "概览"), ("/grids", "网格"), ("/people", "人员"), ("/devices", "应急广播"),
             ("/history", "变更记录"))
    return '<p class="tabs">' + "".join(
        f'<a href="{PREFIX}/registry{p}"{" class=on" if p == active else ""}>{n}</a>'
        for p, n in links) + "</p>"


@requires()
async def registry_page(request: web.Request) -> web.Response:
    con = console(request)
    reg = con.app.ctx.registry
    st = reg.stats()
    labels = (("townships", "乡镇"), ("villages", "村/社区"), ("grids", "网格"),
              ("persons", "人员"), ("devices", "应急广播"), ("hazard_points", "隐患点网格"))
    stats = "".join(f'<div><b>{st[k]}</b>{v}</div>' for k, v in labels)
    imp = ""
    if user_of(request).has("admin"):
        imp = pages_registry_io.import_form(session_of(request).csrf) + (
               f'<h2>导入 JSON 台账</h2><form method="post" action="{PREFIX}/registry/import" '
               'enctype="multipart/form-data" class="card row">'
               f'{csrf_field(session_of(request).csrf)}'
               '<input type="file" name="file" accept=".zip" required>'
               '<button>校验并暂存</button></form><p class="muted">'
               '上传含 regions.json、grids.json、'
               'persons.json、devices.json 的 zip；'
               '校验通过后暂存，重启服务并指定该目录后生效。</p>')
    msg = flash(request)
    version = con.app.ctx.registry_version
    body = ((f'<pre class="ok">{esc(msg)}</pre>' if msg else "") + _nav("")
            + f'<div class="stats">{stats}</div>'
            f'<p class="muted">台账版本 {version}（0 为配置的台账文件）</p>'
            + pages_registry_io.tools(request) + imp)
    return page(request, "网格台账", body, active="registry")


@requires()
async def grids_page(request: web.Request) -> web.Response:
    reg = console(request).app.ctx.registry
    q = request.query.get("q", "").strip()
    regions, persons = reg.data.regions, reg.data.persons
    rows = []
    for g in reg.data.grids.values():
        village = regions.get(g.village)
        town = regions.get(reg.township_of(g.village) or "")
        p, b = persons.get(g.primary), persons.get(g.backup or "")
        text = f"{g.id}{g.name}{village.name if village else ''}{town.name if town else ''}"
        if q and q not in text and not (p and q in p.name):
            continue
        rows.append([esc(g.id), esc(g.name), esc(town.name if town else ""),
                     esc(village.name if village else ""), esc(p.name if p else g.primary),
                     esc(b.name if b else ""), esc(" ".join(g.tags))])
    return page(request, "网格台账 · 网格", _nav("/grids") + _search(q) + _limited(
        ["编号", "名称", "乡镇", "村", "网格员", "备岗", "标签"], rows), active="registry")


@requires()
async def people_page(request: web.Request) -> web.Response:
    reg = console(request).app.ctx.registry
    q = request.query.get("q", "").strip()
    regions = reg.data.regions
    admin = user_of(request).has("admin")
    rows = []
    for p in reg.data.persons.values():
        region = regions.get(p.region)
        if q and q not in f"{p.id}{p.name}{region.name if region else ''}":
            continue
        edit = (f'<a href="{PREFIX}/registry/people/{quote(p.id)}">编辑</a>' if admin else "")
        rows.append([esc(p.id), esc(p.name), PERSON_ROLE_ZH.get(p.role.value, p.role.value),
                     esc(region.name if region else p.region),
                     esc(mask_phone(p.phone) if p.phone else ""),
                     "是" if p.wecom else "", "是" if p.drill else "", edit])
    msg = flash(request)
    shown = f'<pre class="ok">{esc(msg)}</pre>' if msg else ""
    return page(request, "网格台账 · 人员", shown + _nav("/people") + _search(q) + _limited(
        ["编号", "姓名", "角色", "所属", "电话", "企业微信", "参加演练", ""], rows),
        active="registry")


async def device_status(app: Any) -> dict[str, DeviceRecord]:
    """Speakers' last status as kept in Redis by whichever process runs the loudspeaker
    channel (`warnbus.state.devices`); a channel of this very process fills in devices Redis has
    no record of yet."""
    out: dict[str, DeviceRecord] = {}
    for ch in app.engine.channels.values():
        fn = getattr(ch, "devices_status", None)
        if callable(fn):
            for did, v in fn().items():
                state = getattr(getattr(v, "state", None), "value", "")
                if state in ("online", "offline"):
                    out[did] = DeviceRecord(DeviceState(state), float(v.since),
                                            float(getattr(v, "seen", 0.0)), v.area)
    out.update(await DeviceStatusBook(app.ctx.redis).all())
    return out


def _ago(now: float, ts: float) -> str:
    sec = max(0, int(now - ts))
    if sec < 60:
        return f"{sec}秒前"
    if sec < 3600:
        return f"{sec // 60}分钟前"
    return f"{sec // 3600}小时前" if sec < 86400 else f"{sec // 86400}天前"


@requires()
async def devices_page(request: web.Request) -> web.Response:
    con = console(request)
    reg = con.app.ctx.registry
    status = await device_status(con.app)
    now = time.time()  # heartbeats are wall-clock times, whatever the engine's clock
    q = request.query.get("q", "").strip()
    rows, items = [], []
    for d in reg.data.devices.values():
        region = reg.data.regions.get(d.region)
        if q and q not in f"{d.id}{d.name}{region.name if region else ''}":
            continue
        st = status.get(d.id)
        state = st.state.value if st else ""
        label = {"online": '<b class="okc">在线</b>', "offline": '<b class="errc">离线</b>'}.get(
            state, '<span class="muted">未知</span>')
        seen = f"{html.bj(st.seen)}（{_ago(now, st.seen)}）" if st and st.seen else "—"
        since = html.bj(st.since) if st and st.since else ""
        rows.append([esc(d.id), esc(d.name), esc(region.name if region else d.region),
                     esc(d.grid or ""), f'<span data-dev="{esc(d.id)}">{label}</span>',
                     since, seen])
        items.append({"id": d.id, "name": d.name, "region": d.region, "grid": d.grid,
                      "state": state or "unknown", "since": st.since if st else None,
                      "last_heartbeat": st.seen if st and st.seen else None})
    if request.query.get("format") == "json":
        return json_reply({"devices": items})
    body = _nav("/devices") + _search(q) + _limited(
        ["编号", "名称", "村", "网格", "状态", "状态起始", "最后心跳"], rows)
    return page(request, "网格台账 · 应急广播", body, active="registry")


def _search(q: str) -> str:
    return (f'<form method="get" class="row"><input name="q" value="{esc(q)}" placeholder="搜索">'
            '<button>搜索</button></form>')


def _limited(head: list[str], rows: list[list[str]]) -> str:
    more = f"，仅显示前 {LIMIT} 条，请搜索缩小范围" if len(rows) > LIMIT else ""
    note = f'<p class="muted">共 {len(rows)} 条{more}。</p>'
    return note + html.table(head, rows[:LIMIT], "small")


@requires()
async def export_zip(request: web.Request) -> web.Response:
    """The registry as a zip of its JSON files: with full phone numbers for an admin (the
    zip then re-imports as it is), with masked ones for every other role."""
    data = console(request).app.ctx.registry.data
    full = user_of(request).has("admin")
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        dump_registry(data if full else masked(data), tmp)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name in FILES:
                z.write(Path(tmp) / name, name)
    name = "registry.zip" if full else "registry-masked.zip"
    return web.Response(body=buf.getvalue(), content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@requires("admin")
async def import_zip(request: web.Request) -> web.StreamResponse:
    con = console(request)
    upload = (await request.post()).get("file")
    if not isinstance(upload, web.FileField):
        raise back(f"{PREFIX}/registry", "请选择 zip 文件")
    data_dir = Path(con.app.settings.data_dir) if con.app.settings.data_dir else (
        services.default_data_dir())
    target = data_dir / "registry-staged" / time.strftime("%Y%m%d-%H%M%S")
    try:
        with zipfile.ZipFile(upload.file) as z, tempfile.TemporaryDirectory() as tmp:
            names = set(z.namelist())
            missing = [n for n in FILES if n not in names]
            if missing:
                raise back(f"{PREFIX}/registry", f"缺少文件：{'、'.join(missing)}")
            for n in FILES:
                if z.getinfo(n).file_size > 200 * 1024 * 1024:  # a zip bomb is not a county
                    raise back(f"{PREFIX}/registry", f"{n} 过大")
                (Path(tmp) / n).write_bytes(z.read(n))
            reg_data, problems = read_registry(tmp)
            problems += validate_registry(reg_data)
            if problems:
                shown = "\n".join(problems[:20])
                raise back(f"{PREFIX}/registry", f"校验未通过（{len(problems)}处）：\n{shown}")
            dump_registry(reg_data, target)
    except zipfile.BadZipFile:
        raise back(f"{PREFIX}/registry", "不是有效的 zip 文件") from None
    except Exception as e:
        if isinstance(e, web.HTTPException):
            raise
        raise back(f"{PREFIX}/registry", f"校验未通过：{getattr(e, 'message', e)}") from e
    raise back(f"{PREFIX}/registry", f"校验通过（{len(reg_data.grids)}个网格），已暂存到 {target}；"
               "以 WARNBUS_REGISTRY 指向该目录并重启后生效。")
