"""The shared Twilio pieces: base URL rewriting, Retry-After, error classes, masking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio_harness import PHONE, EnvFactory, delivery

from channels.textfit import fit_sentences
from channels.twilio_common import (
    RebasedHttpClient,
    classify,
    parse_retry_after,
)
from warnbus.domain import models
from warnbus.errors import PermanentChannelError, TransientChannelError
from warnbus.runtime import logs


def test_rebase_keeps_path_and_query_and_adds_a_prefix() -> None:
    http = RebasedHttpClient("http://127.0.0.1:9999/twilio/", 5.0)
    url = "https://api.sydney.au1.twilio.com/2010-04-01/Accounts/AC1/Calls.json?x=1"
    assert http.rebase(url) == "http://127.0.0.1:9999/twilio/2010-04-01/Accounts/AC1/Calls.json?x=1"


async def test_twilio_edge_in_the_environment_does_not_move_the_host(
    make_env: EnvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    env = await make_env("sms")
    await env.channel.send(delivery())
    assert len(env.sim.messages) == 1


def test_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, 21211, PermanentChannelError),
    (400, 29999, PermanentChannelError),  # unknown 4xx: the same request fails again
    (401, 20003, PermanentChannelError),
    (429, 20429, TransientChannelError),
    (400, 21611, TransientChannelError),  # the sender's queue is full: later
    (502, None, TransientChannelError),
])
def test_classification(status: int, code: int | None, kind: type[Exception]) -> None:
    e = TwilioRestException(status, "https://api.twilio.com/x", f"The 'To' number {PHONE} no",
                            code)
    err = classify(e, "sms", PHONE, {21211: "not a valid phone number"}, retry_after=2.0)
    assert isinstance(err, kind)
    assert err.provider_code == str(code or status)
    assert PHONE not in err.message and "+86" in err.message


def test_channels_logs_and_console_mask_phones_one_way() -> None:
    """One masking function (`warnbus.domain.models.mask_phone`) for channels, logs and console."""
    import channels.twilio_common as common
    import channels.twilio_sms as sms
    from warnbus.web.console import pages_registry

    for module in (common, sms, logs, pages_registry):
        assert module.mask_phone is models.mask_phone, module
    assert models.mask_phone("+8613812345678") == "+86138****5678"
    assert models.mask_phone("13812345678") == "138****5678"


def test_fit_sentences_keeps_the_kept_part_whole() -> None:
    text = "标题。说明一。说明二。请点击 https://x.cn/a?b=1。"
    out = fit_sentences(text, lambda s: len(s) <= 30, keep="https://x.cn/a?b=1", bound=30)
    assert out == "标题。说明一。请点击 https://x.cn/a?b=1。"
