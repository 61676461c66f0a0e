"""Twilio voice calls: read the warning in Mandarin and take "press 1" as the confirmation.

The call carries its TwiML inline: the text inside a DTMF `<Gather>`, said twice, then a
closing line. The Gather action (a signed webhook) records the ack and says what became of
it (`plugin.Confirmation`: confirmed, or that the warning had been lifted or had ended); the
call status callback reports how the call ended. A call that asks nothing (a 解除, a notice:
`Delivery.asks_confirmation`) says its text twice and hangs up, and counts as delivered when
answered. Redials are the engine's job: this channel only reports.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

import structlog
from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from channels.textfit import fit_sentences
from channels.twilio_common import (
    EMPTY_TWIML,
    SignedWebhooks,
    TwilioConfig,
    build_client,
    guarded,
    ids_of,
    ids_query,
    twiml_response,
)
from warnbus.plugin import (
    CONFIRMATION_ZH,
    FEEDBACK_ZH,
    KEYPAD_PROMPT,
    AckVia,
    Address,
    ChannelInfo,
    Confirmation,
    Delivery,
    EventSink,
    Medium,
    ProviderStatus,
    Receipt,
    WebhookHandler,
    breaker_key_for,
    keypad_report,
    load_config,
    secret_fields_of,
)

log = structlog.get_logger("channels.twilio_voice")

TWIML_MAX = 4000  # Twilio rejects longer inline TwiML (error 32018)
# The script says the text twice: no longer text can fit in TWIML_MAX.
TEXT_BOUND = TWIML_MAX // 2
TEXT_MAX = 1800  # characters a call says (twice, with its prompts, within TWIML_MAX)
# Only the final outcome: the engine acts on it alone (initiated/ringing/answered change
# nothing), and every event is a signed callback; 4 per call were 44 % of a county wave's
# callbacks and would be 296k in a province-wide one.
CALL_EVENTS = ("completed",)
NOT_CONFIRMED = "未收到确认，我们将再次呼叫。"
REPROMPT = "确认收到预警请按1。"
REPEAT = "再播报一遍。"
FEEDBACK_BYE = "也可以回复短信报送。再见。"
FEEDBACK_UNKNOWN = "未能报送，请回复短信或打开链接报送。"

VOICE_PERMANENT: Mapping[int, str] = {
    13223: "the number is not in a valid format",
    13224: "the number is not a valid phone number",
    21210: "from_number is not a verified caller id: check from_number",
    21211: "the number is not a valid phone number",
    21214: "the number cannot be reached",
    21215: "calls to this region are not enabled on the Twilio account (geo permissions)",
    21216: "calls to this number are blocked by Twilio",
    21217: "the number does not appear to be valid",
    32018: "the call script (TwiML) is too long",
}
_STATUS = {
    "queued": ProviderStatus.QUEUED, "initiated": ProviderStatus.QUEUED,
    "ringing": ProviderStatus.SENT, "in-progress": ProviderStatus.SENT,  # answered
    "busy": ProviderStatus.NO_ANSWER, "no-answer": ProviderStatus.NO_ANSWER,
    "canceled": ProviderStatus.NO_ANSWER, "failed": ProviderStatus.FAILED,
}
#: In a status callback's query: the call asked for no key (`Delivery.asks_confirmation`).
_NOTHING_ASKED = "n"
_PRESSED_MEMORY = 4096  # calls whose key press this process saw, newest kept
_SCRIPTS_KEPT = 256  # call scripts (one per warning text) kept ready
# Stands for the Gather action in a kept call script; XML escaping leaves it as it is.
_ACTION = "wb-action-8d1f3a"
# What ElementTree (TwiML's writer) escapes in an attribute value, as it writes it.
_ATTR = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}


class TwilioVoiceConfig(TwilioConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "twilio-voice"
    ring_timeout_s: int = 30  # how long the phone rings before "no-answer"
    gather_timeout_s: int = 10  # how long to wait for the key after each reading
    max_reprompts: int = 2  # wrong keys get this many "press 1" prompts, then the call ends
    #: After the confirmation the call asks for a report by keys (2 到岗, 3 零报告, 4 and the
    #: number of people moved, then #); false: it says the confirmation and ends.
    feedback_keys: bool = True
    language: str = "zh-CN"
    tts_voice: str | None = None  # e.g. "Polly.Zhiyu"; None: Twilio's default for language

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (5 <= self.ring_timeout_s <= 600 and 1 <= self.gather_timeout_s <= 60
                and 0 <= self.max_reprompts <= 5):
            raise ValueError("ring_timeout_s 5..600, gather_timeout_s 1..60, max_reprompts 0..5")


class TwilioVoice:
    """Voice calls through Twilio's Calls API with a press-1 confirmation."""

    def __init__(self, name: str, config: TwilioVoiceConfig) -> None:
        self.name = name
        self.config = config
        self.info = ChannelInfo(
            kind="twilio-voice", provider="twilio", medium=Medium.VOICE, address=Address.PHONE,
            rate_per_s=config.rate_per_s,
            breaker_key=breaker_key_for(config, "twilio", config.account_sid, config.api_base),
            max_length=TEXT_MAX, secret_fields=secret_fields_of(TwilioVoiceConfig))
        self._client, self._http = build_client(config)
        self._hooks = SignedWebhooks(name, config.callback_url, config.auth_token.reveal())
        # The status callback must tell "answered, pressed 1" from "answered, no key". The ack
        # itself is durable (sink.confirm); this memory only sharpens the reported status.
        self._pressed: OrderedDict[str, None] = OrderedDict()
        self._hangups: dict[str, str] = {}  # text -> TwiML of "say it, hang up"
        self._asks: dict[str, list[str]] = {}  # answer -> report prompt split at the action
        self._scripts: dict[str, list[str]] = {}  # text -> call script split at the action
        self._fits: dict[tuple[str, int], str] = {}  # (long text, action length) -> fitted
        self._notices: dict[str, str] = {}  # text -> TwiML of a call that asks nothing

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> TwilioVoice:
        return cls(name, load_config(TwilioVoiceConfig, name, raw))

    def __repr__(self) -> str:
        return f"TwilioVoice({self.name!r})"

    def _say(self, parent: Any, text: str) -> None:
        voice = {"voice": self.config.tts_voice} if self.config.tts_voice else {}
        parent.say(text, language=self.config.language, **voice)

    def _gather(self, response: Any, action: str) -> Any:
        return response.gather(input="dtmf", num_digits=1, timeout=self.config.gather_timeout_s,
                               action=action, method="POST")

    def call_twiml(self, text: str, action: str) -> str:
        """The call script: text in a Gather, once more, then the closing line.

        Every call of a warning says the same text and differs only in its Gather action:
        the script is written once per text and the action put in its place (TwiML's XML
        writer was about a third of the CPU of sending a call)."""
        if _ACTION in text:
            return self._write_twiml(text, action)
        parts = self._scripts.get(text)
        if parts is None:
            if len(self._scripts) >= _SCRIPTS_KEPT:
                self._scripts.clear()
            parts = self._scripts[text] = self._write_twiml(text, _ACTION).split(_ACTION)
        return escape(action, _ATTR).join(parts)

    def _fitted(self, text: str, action: str) -> str:
        """`text` shortened so that its call script fits TWIML_MAX, once per text.

        Every call of a warning says the same text, and its script differs only in the
        Gather action, so the fit depends on the action's length alone: it is measured on the
        script with the placeholder action and kept for the next calls (a chunk of calls
        fitting a long text each would hold the event loop for their sum)."""
        if _ACTION in text:
            return fit_sentences(text, lambda s: len(self._write_twiml(s, action)) <= TWIML_MAX,
                                 bound=TEXT_BOUND)
        extra = len(escape(action, _ATTR)) - len(_ACTION)
        key = (text, extra)
        fitted = self._fits.get(key)
        if fitted is None:
            if len(self._fits) >= _SCRIPTS_KEPT:
                self._fits.clear()

            def fits(s: str) -> bool:  # candidates are measured unkept, not in _scripts
                script = self._write_twiml(s, _ACTION)
                return len(script) + script.count(_ACTION) * extra <= TWIML_MAX

            fitted = self._fits[key] = fit_sentences(text, fits, bound=TEXT_BOUND)
        return fitted

    def notice_twiml(self, text: str) -> str:
        """The script of a call that asks nothing: the text twice, then it hangs up; fitted
        to TWIML_MAX at sentence boundaries, written once per text."""
        twiml = self._notices.get(text)
        if twiml is None:
            if len(self._notices) >= _SCRIPTS_KEPT:
                self._notices.clear()
            fitted = fit_sentences(text, lambda s: len(self._write_notice(s)) <= TWIML_MAX,
                                   bound=TEXT_BOUND)
            twiml = self._notices[text] = self._write_notice(fitted)
        return twiml

    def _write_notice(self, text: str) -> str:
        r = VoiceResponse()
        self._say(r, text)
        self._say(r, REPEAT + text)
        r.hangup()
        return str(r.to_xml(xml_declaration=False))

    def _write_twiml(self, text: str, action: str) -> str:
        r = VoiceResponse()
        self._say(self._gather(r, action), text)
        self._say(self._gather(r, action), REPEAT + text)
        self._say(r, NOT_CONFIRMED)
        return str(r.to_xml(xml_declaration=False))

    async def send(self, delivery: Delivery) -> Receipt:
        ids = ids_query(delivery.campaign_id, delivery.id, delivery.target_id)
        text = delivery.text
        status = f"{self._hooks.base}/status?{ids}"
        if delivery.asks_confirmation:
            action = f"{self._hooks.base}/gather?{ids}"
            twiml = self.call_twiml(text, action) if len(text) <= TEXT_BOUND else ""
            if not twiml or len(twiml) > TWIML_MAX:  # built once when it fits (nearly always)
                twiml = self.call_twiml(self._fitted(text, action), action)
        else:
            twiml = self.notice_twiml(text)
            status += f"&{_NOTHING_ASKED}=1"  # answered is all such a call wants
        call = await guarded(
            self._client.calls.create_async(
                to=delivery.address, from_=self.config.from_number, twiml=twiml,
                status_callback=status,
                status_callback_event=list(CALL_EVENTS), status_callback_method="POST",
                timeout=self.config.ring_timeout_s),
            f"{self.name}: call", delivery.address, VOICE_PERMANENT)
        return Receipt(provider_id=str(call.sid))

    async def aclose(self) -> None:
        await self._http.close()

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        async def gather(request: web.Request, form: Mapping[str, str]) -> web.Response:
            return await self._on_gather(sink, request, form)

        async def status(request: web.Request, form: Mapping[str, str]) -> web.Response:
            return await self._on_status(sink, request, form)

        async def feedback(request: web.Request, form: Mapping[str, str]) -> web.Response:
            return await self._on_feedback(sink, request, form)

        return [("POST", "gather", self._hooks.wrap("gather", gather)),
                ("POST", "feedback", self._hooks.wrap("feedback", feedback)),
                ("POST", "status", self._hooks.wrap("status", status))]

    async def _on_gather(
        self, sink: EventSink, request: web.Request, form: Mapping[str, str]
    ) -> web.Response:
        ids = ids_of(request.query)
        if ids is None:
            log.warning("gather callback without delivery ids", channel=self.name)
            return self._hangup(NOT_CONFIRMED)
        campaign_id, delivery_id, target_id = ids
        digits = form.get("Digits", "")
        if digits == "1":
            self._remember(form.get("CallSid", ""))
            # The engine marks the call delivered with the confirmation (one atomic step).
            result = Confirmation.of(
                await sink.confirm(campaign_id, target_id, AckVia.DTMF, delivery_id))
            log.info("call confirmed by key", channel=self.name, campaign_id=campaign_id,
                     delivery_id=delivery_id, result=result.value)
            # Late (lifted, ended) is never 已确认: the person hears why nothing more is asked.
            if result.confirmed and self.config.feedback_keys:
                return self._ask_report(ids, CONFIRMATION_ZH[result])
            return self._hangup(CONFIRMATION_ZH[result])
        # A wrong key: ask again, a bounded number of times (the count rides in the URL).
        asked = int(request.query.get("r", "0")) if request.query.get("r", "").isdigit() else 0
        if asked >= self.config.max_reprompts:
            return self._hangup(NOT_CONFIRMED)
        again = f"{self._hooks.base}/gather?{ids_query(*ids)}&r={asked + 1}"
        r = VoiceResponse()
        self._say(self._gather(r, again), REPROMPT)
        self._say(r, NOT_CONFIRMED)
        return twiml_response(str(r))

    def _ask_report(self, ids: tuple[str, str, str], said: str) -> web.Response:
        """The confirmation, then a Gather of the report's keys (ended by #, or by silence).

        Written once per answer (`said`: a handful) with the action put in its place, as the
        call scripts are: writing it per key press was a fifth of a confirmation's CPU."""
        action = f"{self._hooks.base}/feedback?{ids_query(*ids)}"
        parts = self._asks.get(said)
        if parts is None:
            r = VoiceResponse()
            self._say(r, said)
            gather = r.gather(input="dtmf", finish_on_key="#",
                              timeout=self.config.gather_timeout_s, action=_ACTION,
                              method="POST")
            self._say(gather, KEYPAD_PROMPT)
            self._say(r, FEEDBACK_BYE)
            r.hangup()
            parts = self._asks[said] = str(r).split(_ACTION)
        return twiml_response(escape(action, _ATTR).join(parts))

    async def _on_feedback(self, sink: EventSink, request: web.Request,
                           form: Mapping[str, str]) -> web.Response:
        ids = ids_of(request.query)
        digits = form.get("Digits", "")
        report = keypad_report(digits)
        if ids is None or report is None:
            return self._hangup(FEEDBACK_UNKNOWN)
        campaign_id, _delivery_id, target_id = ids
        # Twilio retries a Gather action it got no answer to, and a signed request can be
        # replayed: the call and its keys name the report, kept once.
        event = f"twilio|{form.get('CallSid', '')}|{digits}" if form.get("CallSid") else ""
        kept = await sink.report(campaign_id, target_id, AckVia.DTMF, report, event)
        log.info("call reported by keys", channel=self.name, campaign_id=campaign_id,
                 kind=report.kind.value, kept=kept)
        if not kept:
            return self._hangup(FEEDBACK_UNKNOWN)
        count = f"{report.count}人" if report.count is not None else ""
        return self._hangup(f"已报送{FEEDBACK_ZH[report.kind]}{count}，谢谢。")

    def _hangup(self, text: str) -> web.Response:
        # The same few replies every time: built once each (TwiML's XML writer was a tenth
        # of a confirmation's CPU).
        twiml = self._hangups.get(text)
        if twiml is None:
            r = VoiceResponse()
            self._say(r, text)
            r.hangup()
            twiml = self._hangups[text] = str(r)
        return twiml_response(twiml)

    def _remember(self, call_sid: str) -> None:
        if call_sid:
            self._pressed[call_sid] = None
            while len(self._pressed) > _PRESSED_MEMORY:
                self._pressed.popitem(last=False)

    async def _on_status(
        self, sink: EventSink, request: web.Request, form: Mapping[str, str]
    ) -> web.Response:
        ids = ids_of(request.query)
        raw = form.get("CallStatus", "")
        if ids is None or (raw not in _STATUS and raw != "completed"):
            log.warning("call status callback not understood", channel=self.name, status=raw)
            return twiml_response(EMPTY_TWIML)  # 200: Twilio must not retry
        if raw == "completed" and request.query.get(_NOTHING_ASKED) == "1":
            status, detail = ProviderStatus.DELIVERED, "completed (no key asked)"
        elif raw == "completed":
            pressed = form.get("CallSid", "") in self._pressed
            status = ProviderStatus.DELIVERED if pressed else ProviderStatus.NO_ANSWER
            detail = "completed, pressed 1" if pressed else "answered without a key press"
        else:
            status, detail = _STATUS[raw], "answered" if raw == "in-progress" else raw
        if form.get("ErrorCode"):
            detail += f" (Twilio {form['ErrorCode']})"
        await sink.delivery_status(*ids, status, detail)
        return twiml_response(EMPTY_TWIML)
