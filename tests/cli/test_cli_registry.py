"""`warnbus registry export|template|import|history` as an office runs them."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from openpyxl import Workbook, load_workbook
from test_cli import warnbus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry_io"))
from sheets_kit import JULY, TOWN, office_edit, row_where
from xlsx_kit import edit, put, row_of, sample

PID = "p43062300128"


def _env(redis_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARNBUS_")}
    if redis_url:
        env["WARNBUS_REDIS_URL"] = redis_url
    return env


def _edited(path: Path, *, phone: str) -> bytes:
    def change(wb: Workbook) -> None:
        ws = wb["人员"]
        put(ws, row_of(ws, "人员编号", PID), "手机", phone)

    return edit(path.read_bytes(), change)


def _exported_and_edited(tmp_path: Path, env: dict[str, str], phone: str) -> tuple[Path, Path]:
    """The engine's registry exported by the CLI, and a copy with PID's phone changed."""
    out, new = tmp_path / "county.xlsx", tmp_path / "new.xlsx"
    assert warnbus("registry", "export", "--out", str(out), env=env).returncode == 0
    new.write_bytes(_edited(out, phone=phone))
    return out, new


def test_template_export_and_import_round_trip(tmp_path: Path) -> None:
    r = warnbus("registry", "template", "--out", str(tmp_path / "t.xlsx"), env=_env())
    assert r.returncode == 0, r.stderr
    assert load_workbook(tmp_path / "t.xlsx").sheetnames == [
        "说明", "区划", "人员", "网格", "场所", "场所责任人", "值班表"]
    out = tmp_path / "county.xlsx"
    r = warnbus("registry", "export", "--format", "xlsx", "--out", str(out), env=_env())
    persons = len(sample().data.persons)  # grid officers, duty officers, sites' people
    assert r.returncode == 0 and f"777 grids, {persons} persons (registry version 0)" in r.stdout
    r = warnbus("registry", "import", str(out), env=_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "变化（基于版本 0）：没有变化"


def test_import_prints_each_problem_with_sheet_row_column(tmp_path: Path) -> None:
    _out, bad = _exported_and_edited(tmp_path, _env(), "1390000")
    row = row_of(load_workbook(io.BytesIO(bad.read_bytes()))["人员"], "人员编号", PID)
    r = warnbus("registry", "import", str(bad), env=_env())
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["发现 1 个问题，未导入：",
                                     f"  「人员」表第{row}行「手机」列：号码应为11位手机号"]


def test_apply_to_the_engine_and_read_the_history(tmp_path: Path, redis_url: str) -> None:
    _out, new = _exported_and_edited(tmp_path, _env(redis_url), "13900001234")
    r = warnbus("registry", "import", str(new), "--apply", "--by", "王科长", env=_env(redis_url))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "变化（基于版本 0）：人员：修改1；其中手机号变更 1 人"
    assert lines[1] == ("  人员 修改 p43062300128 肖飞秀：手机 +86199****2078 → +86139****1234 "
                        "◆手机号变更")
    assert lines[-1] == "已应用：台账版本 1（运行中的各进程随即使用新台账）"
    r = warnbus("registry", "history", env=_env(redis_url))
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()
    assert head[0].startswith("版本 1  ")
    assert "王科长  导入 new.xlsx：人员：修改1；其中手机号变更 1 人" in head[0]
    assert head[1].strip().startswith("人员 修改 p43062300128 肖飞秀：手机")
    # The engine's registry is now version 1: an export carries the new phone.
    again = tmp_path / "again.xlsx"
    r = warnbus("registry", "export", "--out", str(again), env=_env(redis_url))
    assert "(registry version 1)" in r.stdout
    ws = load_workbook(again)["人员"]
    assert ws.cell(row_of(ws, "人员编号", PID), 7).value == "+8613900001234"
    # A second import prepared on version 0 would overwrite it: it is prepared on 1 instead.
    r = warnbus("registry", "import", str(new), "--apply", env=_env(redis_url))
    assert r.stdout.splitlines()[0] == "变化（基于版本 1）：没有变化"


def test_apply_without_the_engine_says_what_to_do(tmp_path: Path) -> None:
    _out, new = _exported_and_edited(tmp_path, _env(), "13900001234")
    r = warnbus("registry", "import", str(new), "--apply", env=_env())
    assert r.returncode == 2 and "--apply needs the engine's Redis" in r.stderr
    r = warnbus("registry", "import", str(new), "--out", str(tmp_path / "dir"), env=_env())
    assert r.returncode == 0 and (tmp_path / "dir" / "persons.json").exists()
    assert "+8613900001234" in (tmp_path / "dir" / "persons.json").read_text()


def test_rosters_and_sites_from_the_command_line(tmp_path: Path, redis_url: str) -> None:
    """The office's edit of 值班表, 场所, 场所责任人: a broken row is named, the diff counts the
    sites and rosters, the changed version is said to wait for approval, and --apply applies
    it to the running engine (which leaves the version unapproved)."""
    out = tmp_path / "county.xlsx"
    assert warnbus("registry", "export", "--out", str(out), env=_env(redis_url)).returncode == 0
    new, bad = tmp_path / "new.xlsx", tmp_path / "bad.xlsx"
    new.write_bytes(edit(out.read_bytes(), office_edit))

    def broken(wb: Workbook) -> None:
        office_edit(wb)
        ws = wb["值班表"]
        put(ws, row_where(ws, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-20"), "日期", "7月20")

    bad.write_bytes(edit(out.read_bytes(), broken))
    row = row_where(load_workbook(bad)["值班表"], 值班表编号=JULY, 区划代码=TOWN, 日期="7月20")
    r = warnbus("registry", "import", str(bad), env=_env(redis_url))
    assert r.returncode == 1 and r.stdout.splitlines()[1] == (
        f"  「值班表」表第{row}行「日期」列：「7月20」不是日期"
        "（应如 2026-07-01，或起止：2026-01-01至2026-12-31）")
    r = warnbus("registry", "import", str(new), "--apply", env=_env(redis_url))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [f"提示：值班表 {JULY}（2026年7月主汛期值班表）的班次有变化："
                         "应用后须由审批人在控制台「值班安排」审批才生效",
                         "变化（基于版本 0）：人员：新增1，修改1；场所：新增1；值班表：修改1；"
                         "其中手机号变更 1 人"]
    assert any(line.strip().startswith(f"值班表 修改 {JULY} ") for line in lines)
    assert lines[-1] == "已应用：台账版本 1（运行中的各进程随即使用新台账）"
