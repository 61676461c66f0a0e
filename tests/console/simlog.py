"""What the provider simulators themselves logged, as the rows a record should have.

Read only from the simulators' own records (`TwilioSimulator.calls/messages`,
`AliyunSimulator.calls/messages`, `TencentSimulator.calls/messages`,
`WeComSimulator.sent/callbacks`): what each received,
when (on the provider's clock, the engine's), what it answered and what the person did. The
words an outcome must be filed under are this module's own table from the providers' codes,
not the engine's (`warnbus.flow.filed`), so a mislabelled outcome shows as a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from channels import wecom_crypto
from warnbus.tools.cn_world import CnWorld
from warnbus.tools.simulation import ProviderWorld, SimulatedWorld

#: Aliyun's final call status codes in words (a key press is a confirmation, filed 已确认).
ALIYUN_SAID = {"200000": "已接通（未按键确认）", "200001": "已接通（提前挂机，未按键）",
               "200002": "忙", "200003": "未接", "200010": "关机"}
MACHINE = "语音信箱/转接（未接通本人）"
#: Tencent's voiceprompt result ("0" answered, "1" not) and failure reasons in words.
TENCENT_SAID = {"0": "已接通（未按键确认）", "1": "未接", "关机": "关机"}
CONFIRMED = "已确认"
#: Twilio's final CallStatus in words (completed: answered; with a key, 已确认).
TWILIO_SAID = {"completed": "已接通（未按键确认）", "busy": "忙", "no-answer": "未接"}


@dataclass
class SimCall:
    """One call, SMS or card a simulator accepted, and what came of it by its own log."""

    channel: str  # the engine's channel that talks to this simulator
    delivery: str  # the delivery id it carried (Aliyun's OutId is its first 15 hex digits)
    address: str  # +86 phone or WeCom userid
    medium: str  # voice, sms, wecom
    at: float
    said: str  # the outcome a record must file it under
    confirmed: tuple[str, float] | None  # (how, when) the person confirmed on it

    def carries(self, delivery_id: str, address: str) -> bool:
        """Whether this is a send of that delivery (a WeCom text has no task id to say it:
        its addressee is what tells)."""
        if self.channel == "voice-aliyun":
            return delivery_id.removeprefix("dl_")[:15] == self.delivery
        return delivery_id == self.delivery or (not self.delivery and address == self.address)


def sim_calls(world: ProviderWorld) -> list[SimCall]:
    """Everything the simulators accepted, in the order each received it."""
    out = _twilio(world) if isinstance(world, SimulatedWorld) else _cn(world)
    clicks = {c.task_id: c for c in world.wecom.callbacks if c.status == 200}
    for s in world.wecom.sent:
        ref = wecom_crypto.decode_task_id(s.task_id) if s.task_id else None
        click = clicks.get(s.task_id or "")
        out.append(SimCall("wecom", ref.delivery_id if ref else "", s.touser, "wecom", s.at,
                           CONFIRMED if click else "已发出（未收到回执）",
                           ("wecom", click.at) if click else None))
    return out


def _twilio(world: SimulatedWorld) -> list[SimCall]:
    out: list[SimCall] = []
    for c in world.twilio.calls:
        said = CONFIRMED if c.digits == "1" else TWILIO_SAID.get(c.status, "发送失败（")
        out.append(SimCall("voice", _delivery(c.get("StatusCallback")), c.to, "voice", c.at,
                           said, ("dtmf", c.ended_at) if c.digits == "1" else None))
    for m in world.twilio.messages:
        said = "已送达" if m.status == "delivered" else "发送失败（"
        reply = next(((at, x) for at, x in m.replies if x.strip() in ("1", "收到", "确认")),
                     None)
        out.append(SimCall("sms", _delivery(m.get("StatusCallback")), m.to, "sms", m.at, said,
                           ("sms", reply[0]) if reply else None))
    return out


def _delivery(callback: str | None) -> str:
    """The delivery id our channels put in a Twilio StatusCallback's query (`d`)."""
    return parse_qs(urlsplit(callback or "").query).get("d", [""])[0]


def _cn(world: ProviderWorld) -> list[SimCall]:
    assert isinstance(world, CnWorld)
    out: list[SimCall] = []
    for c in world.aliyun.calls:
        smart = any(r.get("smart_status_code") in ("INTELLIGENT_ANSWER", "CALL_FORWARDING")
                    for r in c.reports)
        said = (CONFIRMED if c.dtmf == "1" else MACHINE if smart
                else ALIYUN_SAID.get(c.state, f"? {c.state}"))
        out.append(SimCall("voice-aliyun", c.out_id, "+86" + c.number, "voice", c.sent_at, said,
                           ("dtmf", c.ended_at) if c.dtmf == "1" else None))
    for t in world.tencent.calls:
        said = CONFIRMED if t.keypress == "1" else TENCENT_SAID.get(
            t.outcome, f"发送失败（{t.outcome}")
        out.append(SimCall("voice-tencent", t.context, t.number, "voice", t.sent_at, said,
                           ("dtmf", t.reported_at) if t.keypress == "1" else None))
    for m in world.tencent.messages:
        said = "已送达" if m.outcome == "SUCCESS" else "发送失败（MK:0005"
        reply = next(((at, x) for at, x in m.replies if x.strip() in ("1", "收到", "确认")),
                     None)
        out.append(SimCall("sms", m.context, m.number, "sms", m.sent_at, said,
                           ("sms", reply[0]) if reply else None))
    return out


def agrees(said: str, filed: str) -> bool:
    """Whether a record's outcome says what the simulator did (a failure names its code)."""
    return filed.startswith(said) if said.startswith("发送失败") else filed == said
