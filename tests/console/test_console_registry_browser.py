"""The registry workbook in headless Chromium: download the template and the export, upload
an edited workbook with a boundary file, read the preview (a broken row first, then the
diff), apply, see the history; edit one person. Screenshots for docs/console.md."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from openpyxl import load_workbook
from test_console_browser import SHOTS, _signed_page, live  # noqa: F401  (the fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry_io"))
from xlsx_kit import geojson, office_edit, row_of

PID = "p43062300128"
RING = ((29.690, 112.500), (29.690, 112.501), (29.691, 112.501), (29.691, 112.500),
        (29.690, 112.500))


def _edited(blob: bytes, *, broken: bool) -> bytes:
    return office_edit(blob, pid=PID, phone="13900001234",
                       broken="p43062300130" if broken else "", new_grid_officer="p43062300132")


async def test_registry_workbook_in_the_browser(live, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    base, h, browser = live
    admin = await _signed_page(browser, base, "root", viewport={"width": 1366, "height": 900})
    await admin.click("text=网格台账")
    await admin.wait_for_selector("#registry-upload")
    await admin.screenshot(path=str(SHOTS / "registry.png"), full_page=True)
    async with admin.expect_download() as got:
        await admin.click("text=导出台账（Excel）")
    exported = await asyncio.to_thread(Path(await (await got.value).path()).read_bytes)
    assert load_workbook(io.BytesIO(exported)).sheetnames == [
        "说明", "区划", "人员", "网格", "场所", "场所责任人", "值班表"]
    async with admin.expect_download() as got:
        await admin.click("text=下载 Excel 模板")
    assert (await got.value).suggested_filename == "网格化管理台账模板.xlsx"

    bad, good = tmp_path / "台账-有误.xlsx", tmp_path / "台账.xlsx"
    shape = tmp_path / "新网格.geojson"
    for path, blob in ((bad, _edited(exported, broken=True)),
                       (good, _edited(exported, broken=False)),
                       (shape, geojson({"430623101001-99": RING}))):
        await asyncio.to_thread(path.write_bytes, blob)
    await admin.set_input_files("input[name=workbook]", str(bad))
    await admin.set_input_files("input[name=boundary]", str(shape))
    await admin.click("text=上传并预览")
    await admin.wait_for_selector("ol.problems")
    problems = await admin.inner_text("ol.problems")
    row = row_of(load_workbook(bad)["人员"], "人员编号", "p43062300130")
    assert f"「人员」表第{row}行「手机」列：号码应为11位手机号" in problems
    await admin.screenshot(path=str(SHOTS / "registry-problems.png"), full_page=True)

    await admin.goto(f"{base}/console/registry")
    await admin.set_input_files("input[name=workbook]", str(good))
    await admin.set_input_files("input[name=boundary]", str(shape))
    await admin.click("text=上传并预览")
    await admin.wait_for_selector("mark.phone")
    assert "+86199****2078 → +86139****1234" in await admin.inner_text("mark.phone")
    await admin.screenshot(path=str(SHOTS / "registry-preview.png"), full_page=True)
    await admin.click("text=确认应用")
    await admin.wait_for_selector("pre.ok")
    assert "已应用：台账版本 1" in await admin.inner_text("pre.ok")
    assert h.ctx.registry.data.persons[PID].phone == "+8613900001234"

    await admin.click("text=变更记录")
    await admin.wait_for_selector("details")
    await admin.click("details summary")
    await admin.screenshot(path=str(SHOTS / "registry-history.png"), full_page=True)

    await admin.goto(f"{base}/console/registry/people?q={PID}")
    await admin.click("text=编辑")
    await admin.fill("input[name=phone]", "139 0000 5678")
    await admin.screenshot(path=str(SHOTS / "registry-person.png"))
    await admin.click("text=保存")
    await admin.wait_for_selector("pre.ok")
    assert "已保存：台账版本 2" in await admin.inner_text("pre.ok")
    assert h.ctx.registry.data.persons[PID].phone == "+8613900005678"
