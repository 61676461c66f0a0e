"""Registry pages for the office's workbook: template, export, upload -> preview -> apply,
the change history, and editing one person (phone, position).

An upload (a workbook and/or a boundary file) is parsed in the sandbox child, checked and
compared off the event loop, and kept in Redis as a staged import for an hour: the preview
shows every problem (sheet, row, column) or the changes (phone changes highlighted); an admin
applies it, and every process serves the new registry without a restart. A staged import is
applied only on the version it was prepared on (someone else's change in between refuses
it). Every applied change, and every edit of a person, is in the history: who, when, what.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from aiohttp import web

from warnbus.domain.models import Role, mask_phone
from warnbus.errors import RegistryConflictError, RegistryImportError
from warnbus.registry_io.diff import KIND_ZH, OP_ZH, Change, Diff, diff
from warnbus.registry_io.edit import edit_person
from warnbus.registry_io.export import export_workbook, masked, template_workbook
from warnbus.registry_io.kinds import role_zh
from warnbus.registry_io.sandbox import MAX_UPLOAD
from warnbus.registry_io.service import Report, decode_report, encode_report, prepare, report
from warnbus.state.registrybook import RegistryBook, Staged
from warnbus.web.console import html
from warnbus.web.console.base import (
    PREFIX,
    Handler,
    back,
    console,
    flash,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.html import csrf_field, esc

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHOWN = 1000  # changes or problems listed on a page; the rest are counted
HOME = f"{PREFIX}/registry"


def _download(body: bytes, name: str) -> web.Response:
    quoted = urllib.parse.quote(name)
    return web.Response(body=body, content_type=XLSX, headers={
        "Content-Disposition": f"attachment; filename=\"registry.xlsx\"; filename*=UTF-8''{quoted}",
        "Cache-Control": "no-store"})


@requires()
async def template(request: web.Request) -> web.Response:
    return _download(await asyncio.to_thread(template_workbook), "网格化管理台账模板.xlsx")


@requires()
async def export_xlsx(request: web.Request) -> web.Response:
    """The registry as a workbook: full phone numbers for an admin (it imports back as it
    is), masked ones for every other role."""
    app = console(request).app
    data = app.ctx.registry.data
    full = user_of(request).has("admin")
    current = await RegistryBook(app.ctx.redis).current()
    body = await asyncio.to_thread(export_workbook, data if full else masked(data),
                                   year=current.year if current else None)
    return _download(body, "网格化管理台账.xlsx" if full else "网格化管理台账（脱敏）.xlsx")


def import_form(csrf: str) -> str:
    """The upload form of the registry page (admins)."""
    crs = html.options((("", "从文件读取（.prj / GeoJSON）"),
                        ("gcj02", "GCJ-02（高德、腾讯等网页地图坐标）"),
                        ("EPSG:4490", "CGCS2000 经纬度（EPSG:4490，用于缺少 .prj 的 shapefile）")))
    return (
        f'<h2>导入 Excel 台账</h2><form method="post" action="{HOME}/upload" '
        f'enctype="multipart/form-data" class="card" id="registry-upload">{csrf_field(csrf)}'
        '<div class="row"><label>台账工作簿 <input type="file" name="workbook" accept=".xlsx,.xls">'
        '</label></div><div class="row"><label>网格边界（可选） <input type="file" name="boundary" '
        'accept=".geojson,.json,.zip"></label><label>坐标系 <select name="crs">'
        f'{crs}</select></label><label>对应字段 <input name="key" placeholder="网格编号" size="8">'
        '</label></div><div class="row"><button>上传并预览</button></div></form>'
        '<p class="muted">工作簿中有的表替换对应记录，没有的表保持不变；'
        '先预览变化与问题（精确到表、行、列），'
        '确认后应用，无需重启。'
        '边界文件为 GeoJSON 或含 .shp/.shx/.dbf/.prj 的 zip，坐标系 CGCS2000。</p>')


def tools(request: web.Request) -> str:
    """Links every signed-in user has on the registry page."""
    return (f'<p class="row"><a class="button" href="{HOME}/template.xlsx">下载 Excel 模板</a>'
            f'<a class="button" href="{HOME}/export.xlsx">导出台账（Excel）</a>'
            f'<a class="button" href="{HOME}/export.zip">导出台账（JSON zip）</a>'
            f'<a href="{HOME}/history">变更记录</a></p>')


async def _field(request: web.Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            blob = value.file.read(MAX_UPLOAD + 1)
            if blob:
                files[name] = (_filename(value.filename, name), blob)
        else:
            fields[name] = str(value)
    return fields, files


def _filename(given: str | None, default: str) -> str:
    """A file's name as the history shows it: its last path part (some browsers send the
    whole path), percent-encoding undone (some clients encode non-ASCII names), bounded."""
    name = urllib.parse.unquote(given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(c for c in name if c.isprintable())[:100] or default


def _big_upload(handler: Handler) -> Handler:
    """A province's workbook is larger than an alert may be: this route reads up to
    MAX_UPLOAD (after the session check, before the role check: any signed-in user)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        return await handler(request.clone(client_max_size=MAX_UPLOAD + 1024 * 1024))

    wrapper.roles = getattr(handler, "roles", ())  # type: ignore[attr-defined]
    return wrapper


async def _upload(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    fields, files = await _field(request)
    wb, bd = files.get("workbook"), files.get("boundary")
    if wb is None and bd is None:
        raise back(HOME, "请选择台账工作簿或边界文件")
    version, data = ctx.registry_version, ctx.registry.data
    try:
        p = await prepare(data, version, workbook=wb[1] if wb else None,
                          workbook_name=wb[0] if wb else "", boundary=bd[1] if bd else None,
                          boundary_name=bd[0] if bd else "", crs=fields.get("crs", "")[:40],
                          key=fields.get("key", "").strip()[:40])
    except RegistryImportError as e:
        raise back(HOME, f"无法导入：{e.message}") from None
    stage = await RegistryBook(ctx.redis).stage(
        p.candidate.data, base_version=version, by=user_of(request).name, source=p.source,
        report=encode_report(report(p)), year=p.candidate.year)
    raise web.HTTPSeeOther(f"{HOME}/imports/{stage}")


upload = _big_upload(requires("admin")(_upload))


def _change_rows(changes: tuple[Change, ...]) -> list[list[str]]:
    rows = []
    for c in changes[:SHOWN]:
        parts = []
        for f in c.fields:
            text = f"{esc(f.label)}：{esc(f.old or '（空）')} → {esc(f.new or '（空）')}"
            parts.append(f'<mark class="phone">◆ {text}</mark>' if f.phone and c.op == "changed"
                         else text)
        rows.append([esc(OP_ZH[c.op]), esc(KIND_ZH.get(c.kind, c.kind)), esc(c.id), esc(c.name),
                     "<br>".join(parts)])
    return rows


def _report_html(r: Report) -> str:
    out = []
    if r.boundary:
        out.append(f'<p>边界：{esc(r.boundary)}</p>')
    if r.warnings:
        out.append('<ul class="warn">' + "".join(f"<li>提示：{esc(w)}</li>" for w in r.warnings)
                   + "</ul>")
    if r.problems:
        total = max(r.problem_count, len(r.problems))
        more = f"（仅列出前 {SHOWN} 个）" if total > SHOWN else ""
        out.append(f'<h2 class="err">发现 {total} 个问题，不能应用{more}</h2><ol class="problems">'
                   + "".join(f"<li>{esc(p)}</li>" for p in r.problems[:SHOWN]) + "</ol>")
        return "".join(out)
    out.append(_diff_html(r.diff))
    return "".join(out)


def _diff_html(d: Diff) -> str:
    counts = d.counts()
    stats = "".join(f'<div><b>{n}</b>{KIND_ZH[k]}{OP_ZH[op]}</div>'
                    for k, ops in counts.items() for op, n in ops.items() if n)
    phones = (f'<div class="phone"><b>{d.phones_changed}</b>手机号变更</div>'
              if d.phones_changed else "")
    more = f'<p class="muted">仅列出前 {SHOWN} 处变化。</p>' if len(d.changes) > SHOWN else ""
    return (f'<h2>变化：{esc(d.summary())}</h2><div class="stats">{stats}{phones}</div>'
            + (html.table(["操作", "类别", "编号", "名称", "内容"], _change_rows(d.changes),
                          "small diff")
               if d.changes else "") + more)


async def _staged(request: web.Request) -> tuple[RegistryBook, Staged, Report]:
    """The staged import a route names, or back to the registry page saying it is gone."""
    book = RegistryBook(console(request).app.ctx.redis)
    staged = await book.staged(request.match_info["id"])
    if staged is None:
        raise back(HOME, "该导入预览已过期或已应用，请重新上传")
    return book, staged, decode_report(staged.report)


@requires("admin")
async def preview_page(request: web.Request) -> web.StreamResponse:
    con = console(request)
    _book, staged, r = await _staged(request)
    current = con.app.ctx.registry_version
    stale = current != staged.base_version
    head = (f'<p>{esc(staged.source)}（{esc(staged.by)} 上传，'
            f'基于台账版本 {staged.base_version}）</p>')
    action = ""
    if stale:
        action = (f'<p class="err">台账已被他人更新（当前版本 {current}）：此预览不能应用，'
                  '请重新上传。</p>')
    elif r.problems or r.diff.empty:
        action = f'<p><a href="{HOME}">返回，改好后重新上传</a></p>'
    else:
        action = (f'<form method="post" action="{HOME}/imports/{esc(staged.stage_id)}/apply" '
                  f'class="row">{csrf_field(session_of(request).csrf)}'
                  f'<button>确认应用（版本 {current} → {current + 1}）</button>'
                  f'<a href="{HOME}">放弃</a></form>')
    body = head + action + _report_html(r)
    return page(request, "网格台账 · 导入预览", body, active="registry")


@requires("admin")
async def apply_import(request: web.Request) -> web.StreamResponse:
    con = console(request)
    book, staged, r = await _staged(request)
    if r.problems or r.diff.empty:
        raise back(f"{HOME}/imports/{staged.stage_id}", "有问题或没有变化，未应用")
    try:
        version = await con.app.engine.registry.apply(
            staged.data, expected=staged.base_version, by=user_of(request).name,
            source=staged.source, year=staged.year, summary=r.diff.summary(),
            diff=staged.report)
    except RegistryConflictError as e:
        raise back(HOME, e.message) from None
    await book.drop_stage(staged.stage_id)
    raise back(HOME, f"已应用：台账版本 {version}（{r.diff.summary()}），各进程随即使用新台账")


@requires()
async def history_page(request: web.Request) -> web.Response:
    con = console(request)
    rows = []
    for _id, h in await RegistryBook(con.app.ctx.redis).history(100):
        try:
            kept = decode_report(h.diff)
        except Exception:  # an entry without a readable report: its summary says enough
            kept = Report(Diff())
        details = _change_rows(kept.diff.changes[:200])
        left = len(kept.diff.changes) - len(details) + kept.omitted
        what = "<br>".join(f"{r[0]}{r[1]} {r[2]} {r[3]} {r[4]}" for r in details) + (
            f"<br>……另有 {left} 处变化" if left > 0 and details else "")
        rows.append([str(h.version), html.bj(h.at), esc(h.by), esc(h.source),
                     f"{esc(h.summary)}<details><summary>明细</summary>{what}</details>"
                     if what else esc(h.summary)])
    body = (f'<p>当前台账版本 {con.app.ctx.registry_version}（0 为配置的台账文件）。</p>'
            + (html.table(["版本", "时间", "操作人", "来源", "变化"], rows, "small")
               if rows else '<p class="muted">尚无变更。</p>'))
    return page(request, "网格台账 · 变更记录", body, active="registry")


@requires("admin")
async def person_page(request: web.Request) -> web.StreamResponse:
    con = console(request)
    pid = request.match_info["id"]
    person = con.app.ctx.registry.data.persons.get(pid)
    if person is None:
        raise web.HTTPNotFound(text="没有此人员")
    msg = flash(request)
    roles = html.options(((r.value, role_zh(r)) for r in Role), person.role.value)
    region = con.app.ctx.registry.data.regions.get(person.region)
    body = ((f'<pre class="err">{esc(msg)}</pre>' if msg else "")
            + '<form method="post" class="card" id="person-edit">'
              f'{csrf_field(session_of(request).csrf)}'
            f'<input type="hidden" name="v" value="{con.app.ctx.registry_version}">'
            f'<p>{esc(person.id)} · {esc(person.name)} · '
            f'{esc(region.name if region else person.region)}'
            f'（现手机 {esc(mask_phone(person.phone) if person.phone else "无")}）</p>'
            f'<div class="row"><label>手机 <input name="phone" value="{esc(person.phone or "")}" '
            f'inputmode="tel"></label><label>职位 <select name="role">{roles}</select></label>'
            '<button>保存</button></div></form><p class="muted">'
            '保存后立即生效（正在进行的叫应下一次呼叫即用新号码），'
            '并记入变更记录。</p>')
    return page(request, f"编辑人员 · {person.name}", body, active="registry")


@requires("admin")
async def person_save(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    pid = request.match_info["id"]
    here = f"{HOME}/people/{urllib.parse.quote(pid)}"
    data = await request.post()
    base, version = ctx.registry.data, ctx.registry_version
    if pid not in base.persons:
        raise web.HTTPNotFound(text="没有此人员")
    if str(data.get("v", "")) != str(version):
        raise back(here, "台账已被他人更新，请核对后重新保存")
    new, problems = await asyncio.to_thread(edit_person, base, pid,
                                            phone=str(data.get("phone", ""))[:40],
                                            role=str(data.get("role", ""))[:20])
    if problems:
        raise back(here, "未保存：\n" + "\n".join(problems[:20]))
    d = diff(base, new)
    if d.empty:
        raise back(here, "没有变化")
    try:
        new_version = await con.app.engine.registry.apply(
            new, expected=version, by=user_of(request).name, source=f"控制台编辑人员 {pid}",
            year=None, summary=d.summary(), diff=encode_report(Report(d)), validated=True)
    except RegistryConflictError as e:
        raise back(here, e.message) from None
    raise back(f"{HOME}/people?q={urllib.parse.quote(pid)}",
               f"已保存：台账版本 {new_version}（{d.summary()}）")
