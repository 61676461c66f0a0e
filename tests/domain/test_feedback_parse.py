"""SMS keywords of a report after the ack, as people type them on a phone."""

from __future__ import annotations

import msgspec
import pytest

from warnbus.domain.feedback import FeedbackKind, Report, chinese_number, parse_report

A, E, H, Z = (FeedbackKind.ARRIVED, FeedbackKind.EVACUATED, FeedbackKind.HAZARD,
              FeedbackKind.ZERO)


@pytest.mark.parametrize(("body", "kind", "count"), [
    ("到岗", A, None), ("已到岗。", A, None), (" 到 岗 ", A, None), ("已到崗", A, None),
    ("零报告", Z, None), ("零報告！", Z, None), ("0报告", Z, None),
    ("转移 35", E, 35), ("转移35", E, 35), ("已转移35人", E, 35), ("转移：35人", E, 35),
    ("转移３５", E, 35), ("轉移 ３５ 人", E, 35), ("已转移三十五人", E, 35),
    ("转移 两百 人", E, 200), ("撤离 一百零五 名", E, 105), ("转移十二人", E, 12),
    ("转移十", E, 10), ("转移 0", E, 0), ("转移一千二百三十四", E, 1234),
    ("转移一万零二十", E, 10020),
])
def test_reports_are_read_whatever_the_typing(body: str, kind: FeedbackKind,
                                              count: int | None) -> None:
    report = parse_report(body)
    assert report is not None, body
    assert (report.kind, report.count) == (kind, count)


@pytest.mark.parametrize("body", [
    "", "1", "收到", "确认", "转移", "转移 人", "转移 35 36", "转移 1,200", "转移三五",
    "转移 99999999", "到岗了吗？我在路上", "你好",
])
def test_what_is_no_report_stays_none(body: str) -> None:
    assert parse_report(body) is None


def test_a_hazard_keeps_its_words_and_its_photo_link() -> None:
    r = parse_report("險情：桥面漫水 水位 3.5 米 https://img.example.cn/a.jpg")
    assert r == Report(H, text="桥面漫水 水位 3.5 米", photo="https://img.example.cn/a.jpg")
    assert parse_report("灾情") == Report(H, text="灾情")
    assert parse_report("有险情 山体滑坡") == Report(H, text="山体滑坡")
    long = parse_report("险情 " + "水" * 2000)
    assert long is not None and len(long.text) == 500


def test_chinese_numbers() -> None:
    assert [chinese_number(t) for t in ("三十五", "两百", "一百零五", "十二", "零", "三五")] == [
        35, 200, 105, 12, 0, None]


def test_a_report_is_checked_however_it_is_made() -> None:
    """The console and the ack page build reports from fields: a bad one is refused."""
    for bad in (dict(kind=E), dict(kind=E, count=-1), dict(kind=A, count=3),
                dict(kind=H, text="x", photo="javascript:alert(1)"), dict(kind=H, text="x" * 501)):
        with pytest.raises(ValueError):
            Report(**bad)  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"kind": "evacuated", "count": 2000000}', type=Report)
