"""A Tencent Cloud-compatible SMS and voice server (sms 2021-01-11, vms 2020-09-02).

It checks each request's TC3-HMAC-SHA256 signature as Tencent does: an unknown SecretId
(AuthFailure.SecretIdNotFound), a wrong key (AuthFailure.SignatureFailure), an X-TC-Timestamp
more than 5 minutes from its clock (AuthFailure.SignatureExpire). It enforces the app id,
signature, templates and their variable rules (FailedOperation.TemplateIncorrectOrUnapproved,
InvalidParameterValue.TemplateParameterLengthLimit, ...ProhibitedUseUrlInTemplateParameter)
and the per-number limits (SMS: per number in SendStatusSet; voice: the request refused),
then plays the provider's part: status / reply / voice callbacks (optionally duplicated,
late, out of order; a key-press push carries the 1 and the keys of a report after it,
"1435#", when the officer reports by keys: `OfficerModel.keypad`, "confirm:435#" scripted),
or the same receipts held for PullSmsSendStatus / PullSmsReplyStatus.
Every answer is HTTP 200 `{"Response": {...}}`, errors included, as Tencent's are.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from channels.sim.cn_limits import (
    CHINA,
    TENCENT_SMS,
    TENCENT_VOICE,
    NumberCounter,
    NumberLimits,
)
from channels.sim.cn_server import SimServer
from channels.sim.officers import (
    CONFIRM,
    SMS_FAILURES,
    CallHabits,
    OfficerModel,
    Script,
    Turns,
    scripted_keys,
)

MAX_SKEW_S = 300.0
SERVICES = {"2021-01-11": "sms", "2020-09-02": "vms"}
_VAR = re.compile(r"\{(\d+)\}")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_NUMBER = re.compile(r"^\+86(1\d{10})$")
#: How each ending is reported: voiceprompt result, or a failure (code, reason).
PROMPT = {"confirm": "0", "heard": "0", "hangup": "0", "voicemail": "0", "forwarded": "0",
          "no-answer": "1", "busy": "1"}
FAILURES = {"off": (4, "关机"), "empty": (8, "空号"), "stopped": (5, "停机")}


class TcError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class TcRecord:
    id: str  # SerialNo or CallId
    number: str  # +86...
    template: str
    params: list[str]
    text: str
    context: str
    sent_at: float
    ending: str = ""
    keys: str = ""  # a scripted report's keys after the confirming 1 ("confirm:435#")
    keypress: str = ""
    #: What the recipient's side reported, as pushed (or held): an SMS's report_status
    #: (SUCCESS, FAIL), a call's voiceprompt result ("0" answered, "1" not) or failure reason.
    outcome: str = ""
    reported_at: float = 0.0
    replies: list[tuple[float, str]] = field(default_factory=list)  # (when, text) sent back


def tc3_signature(secret_key: str, date: str, service: str, method: str, query: str,
                  content_type: str, host: str, body: bytes, timestamp: str) -> str:
    """TC3-HMAC-SHA256 as Tencent computes it (signed headers: content-type;host)."""
    canonical = "\n".join([method, "/", query, f"content-type:{content_type}\nhost:{host}\n",
                           "content-type;host", hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class TencentSimulator(SimServer):
    """A local stand-in for sms/vms.tencentcloudapi.com and the people they reach."""

    def __init__(
        self, secret_id: str, secret_key: str, officers: OfficerModel, *,
        sdk_app_id: str = "1400000000", sign_names: tuple[str, ...] = ("应急管理局",),
        sms_templates: Mapping[str, str] | None = None,
        voice_templates: Mapping[str, str] | None = None,
        sms_var_max: int = 6, voice_var_max: int = 20,
        sms_status_url: str | None = None, sms_reply_url: str | None = None,
        voice_url: str | None = None, pull: bool = False,
        sms_limits: NumberLimits = TENCENT_SMS, voice_limits: NumberLimits = TENCENT_VOICE,
        habits: CallHabits | None = None,
        scripted: Mapping[str, str | Script] | None = None,
        failures: Mapping[str, str] | None = None, duplicate: bool = False,
        late_s: float = 0.0, out_of_order: bool = False, step_delay_s: float = 0.01,
        clock: Callable[[], float] = time.time,
        auth_clock: Callable[[], float] = time.time, max_records: int = 10_000,
    ) -> None:
        super().__init__()
        self.keys = {secret_id: secret_key}
        self.officers = officers
        self.sdk_app_id = sdk_app_id
        self.sign_names = set(sign_names)
        self.sms_templates = dict(sms_templates or {})
        self.voice_templates = dict(voice_templates or {})
        self.var_max = {"sms": sms_var_max, "vms": voice_var_max}
        self.urls = {"sms-status": sms_status_url, "sms-reply": sms_reply_url,
                     "voice": voice_url}
        self.pull = pull  # hold receipts for the Pull APIs instead of pushing them
        self.sms_limit = NumberCounter(sms_limits)
        self.voice_limit = NumberCounter(voice_limits)
        self.habits = habits or CallHabits()
        #: +86 number -> its ending ("confirm", "busy", ...) or a `Script` (turn by turn)
        self.scripted: dict[str, str | Script] = dict(scripted or {})
        self._turns = Turns(self.scripted)
        self.failures = dict(failures or {})  # +86 number -> error code answered to a send
        self.duplicate, self.late_s, self.out_of_order = duplicate, late_s, out_of_order
        self.step_delay_s = step_delay_s
        self.clock = clock  # the provider's business time: limits, nights, reports
        self.auth_clock = auth_clock  # the time request signatures are checked against
        self.messages: deque[TcRecord] = deque(maxlen=max_records)
        self.calls: deque[TcRecord] = deque(maxlen=max_records)
        self.pushes: deque[tuple[str, Any, int]] = deque(maxlen=max_records)
        self.refusals: deque[tuple[str, str]] = deque(maxlen=max_records)
        self.held_statuses: list[dict[str, Any]] = []
        self.held_replies: list[dict[str, Any]] = []

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return self._handle

    # ------------------------------------------------------------------ the API

    async def _handle(self, request: web.Request) -> web.Response:
        rid = str(uuid.uuid4())
        body = await request.read()
        action = request.headers.get("X-TC-Action", "")
        try:
            service = self._verify(request, body)
            handler = self._actions().get((service, action))
            if handler is None:
                raise TcError("InvalidAction", f"{action} is not an action of {service}")
            try:
                params = json.loads(body or b"{}")
            except ValueError as e:
                raise TcError("FailedOperation.JsonParseFail", "body is not JSON") from e
            result = handler(params)
        except TcError as e:
            self.refusals.append((action, e.code))
            result = {"Error": {"Code": e.code, "Message": e.message}}
        # The SDK reads errors only from exactly this content type (no charset).
        return web.Response(body=json.dumps({"Response": {**result, "RequestId": rid}},
                                            ensure_ascii=False).encode(),
                            headers={"Content-Type": "application/json"})

    def _actions(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]]:
        return {("sms", "SendSms"): self._send_sms,
                ("sms", "PullSmsSendStatus"): self._pull_status,
                ("sms", "PullSmsReplyStatus"): self._pull_replies,
                ("vms", "SendTtsVoice"): self._send_voice}

    def _verify(self, request: web.Request, body: bytes) -> str:
        auth = request.headers.get("Authorization", "")
        m = re.fullmatch(r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/(\w+)/"
                         r"tc3_request, SignedHeaders=content-type;host, Signature=([0-9a-f]+)",
                         auth)
        if m is None:
            raise TcError("AuthFailure.SignatureFailure", "The Authorization header is invalid.")
        secret_id, date, service, signature = m.groups()
        secret = self.keys.get(secret_id)
        if secret is None:
            raise TcError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        stamp = request.headers.get("X-TC-Timestamp", "")
        if not stamp.isdigit() or abs(self.auth_clock() - int(stamp)) > MAX_SKEW_S:
            raise TcError("AuthFailure.SignatureExpire",
                          "Signature expired: the request time differs from the server's "
                          "by more than 5 minutes.")
        if SERVICES.get(request.headers.get("X-TC-Version", "")) != service or (
                datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d") != date):
            raise TcError("AuthFailure.SignatureFailure", "The credential scope is wrong.")
        want = tc3_signature(secret, date, service, request.method, request.query_string,
                             request.headers.get("Content-Type", ""),
                             request.headers.get("Host", ""), body, stamp)
        if not hmac.compare_digest(want, signature):
            raise TcError("AuthFailure.SignatureFailure", "The provided credentials could not "
                          "be validated. Please check your signature is correct.")
        return service

    def _fill(self, service: str, content: str | None, params: Any) -> str:
        if content is None:
            raise TcError("FailedOperation.TemplateIncorrectOrUnapproved",
                          "the template is not approved or does not exist")
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise TcError("InvalidParameterValue.TemplateParameterFormatError",
                          "TemplateParamSet must be strings")
        wanted = sorted({int(n) for n in _VAR.findall(content)})
        if len(params) != len(wanted):
            raise TcError("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                          "the parameters do not match the approved template")
        for p in params:
            if _URL.search(p):
                raise TcError("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
                              "URLs are not allowed in template parameters")
            if len(p) > self.var_max[service]:
                code = ("InvalidParameterValue.TemplateParameterLengthLimit" if service == "sms"
                        else "InvalidParameterValue.ContentLengthLimit")
                raise TcError(code, "a template parameter is too long")
        return _VAR.sub(lambda m: params[int(m.group(1)) - 1], content)

    def _send_sms(self, p: dict[str, Any]) -> dict[str, Any]:
        if str(p.get("SmsSdkAppId")) != self.sdk_app_id:
            raise TcError("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist")
        if p.get("SignName") not in self.sign_names:
            raise TcError("FailedOperation.SignatureIncorrectOrUnapproved",
                          "the signature is not approved or does not exist")
        text = self._fill("sms", self.sms_templates.get(str(p.get("TemplateId"))),
                          p.get("TemplateParamSet", []))
        out = []
        for number in p.get("PhoneNumberSet") or []:
            code = self.failures.get(number)
            if code is None and not _NUMBER.match(number):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            code = code or self.sms_limit.admit(number, self.clock())
            serial = f"2433:{uuid.uuid4().int % 10**20}"
            if code:
                self.refusals.append(("SendSms", code))
                out.append({"SerialNo": "", "PhoneNumber": number, "Fee": 0, "Code": code,
                            "Message": code, "IsoCode": "CN", "SessionContext": ""})
                continue
            r = TcRecord(serial, number, str(p["TemplateId"]), p["TemplateParamSet"],
                         f"【{p['SignName']}】{text}", str(p.get("SessionContext", "")),
                         self.clock())
            r.ending = scripted_keys(self._turns.next("sms", number) or "")[0]
            self.messages.append(r)
            self._spawn(self._sms_life(r))
            out.append({"SerialNo": serial, "PhoneNumber": number, "Fee": 1, "Code": "Ok",
                        "Message": "send success", "IsoCode": "CN",
                        "SessionContext": r.context})
        return {"SendStatusSet": out}

    def _pull_status(self, p: dict[str, Any]) -> dict[str, Any]:
        n = int(p.get("Limit", 100))
        taken, self.held_statuses = self.held_statuses[:n], self.held_statuses[n:]
        return {"PullSmsSendStatusSet": taken}

    def _pull_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        n = int(p.get("Limit", 100))
        taken, self.held_replies = self.held_replies[:n], self.held_replies[n:]
        return {"PullSmsReplyStatusSet": taken}

    def _send_voice(self, p: dict[str, Any]) -> dict[str, Any]:
        if str(p.get("VoiceSdkAppid")) != self.sdk_app_id:
            raise TcError("InvalidParameterValue.SdkAppidNotExist", "SdkAppid does not exist")
        number = str(p.get("CalledNumber", ""))
        if number in self.failures:
            raise TcError(self.failures[number], "simulated refusal")
        if not _NUMBER.match(number):
            raise TcError("InvalidParameterValue.CalledNumberVerifyFail", "bad called number")
        text = self._fill("vms", self.voice_templates.get(str(p.get("TemplateId"))),
                          p.get("TemplateParamSet", []))
        refused = self.voice_limit.admit(number, self.clock())
        if refused:
            raise TcError(refused, "the number hit the frequency limit")
        r = TcRecord(uuid.uuid4().hex, number, str(p["TemplateId"]), p["TemplateParamSet"],
                     text, str(p.get("SessionContext", "")), self.clock())
        r.ending, r.keys = scripted_keys(self._ending(r))
        self.calls.append(r)
        self._spawn(self._call_life(r))
        return {"SendStatus": {"CallId": r.id, "SessionContext": r.context}}

    # ------------------------------------------------------------------ what happens next

    async def _sms_life(self, r: TcRecord) -> None:
        reaction = self.officers.react(r.number, r.text)
        ending = r.ending
        ok = reaction.reachable and ending not in SMS_FAILURES
        await asyncio.sleep(self.step_delay_s + self.late_s)
        r.outcome, r.reported_at = "SUCCESS" if ok else "FAIL", self.clock()
        mobile = r.number.removeprefix("+86")
        status = {"user_receive_time": _local(self.clock()), "nationcode": "86",
                  "mobile": mobile, "report_status": "SUCCESS" if ok else "FAIL",
                  "errmsg": "DELIVRD" if ok else "MK:0005",
                  "description": "用户短信送达成功" if ok else "用户无法接收", "sid": r.id}
        if self.pull:
            self.held_statuses.append({
                "UserReceiveTime": status["user_receive_time"], "CountryCode": "86",
                "SubscriberNumber": mobile, "PhoneNumber": r.number, "SerialNo": r.id,
                "ReportStatus": status["report_status"], "Description": status["description"],
                "SessionContext": r.context})
        else:
            await self._push("sms-status", [status])
        answers = ending == "confirm" if ending else reaction.answers
        if ok and answers:
            await asyncio.sleep(self.step_delay_s if ending else reaction.delay_s)
            await self.reply(r, "收到")

    async def reply(self, r: TcRecord, text: str = "1") -> int:
        """The recipient of `r` answers it: a reply callback (or a held reply when pulling)."""
        now = self.clock()
        r.replies.append((now, text))
        if self.pull:
            self.held_replies.append({
                "ExtendCode": "", "CountryCode": "86",
                "SubscriberNumber": r.number.removeprefix("+86"), "PhoneNumber": r.number,
                "SignName": next(iter(self.sign_names), ""), "ReplyContent": text,
                "ReplyTime": _local(now)})
            return 200
        return await self._push("sms-reply", {
            "extend": "", "mobile": r.number.removeprefix("+86"), "nationcode": "86",
            "sign": next(iter(self.sign_names), ""), "text": text, "time": int(now)})

    def _ending(self, r: TcRecord) -> str:
        scripted = self._turns.next("calls", r.number)
        if scripted:
            return scripted
        reaction = self.officers.react(r.number, r.text)
        if not reaction.reachable:
            return "off"
        return "confirm" if reaction.answers else self.habits.ending(
            self.officers.seed, r.number, r.text)

    async def _call_life(self, r: TcRecord) -> None:
        scripted = bool(self.scripted.get(r.number))
        ending, keys = r.ending, r.keys
        mobile, now = r.number.removeprefix("+86"), str(int(self.clock()))
        base = {"call_from": "", "callid": r.id, "mobile": mobile, "nationcode": "86"}
        events: list[dict[str, Any]] = []
        if ending == CONFIRM:
            # The keys the person pressed, in one push: 1, then a report's keys up to #.
            r.keypress = "1" + (keys if scripted else self.officers.keypad(r.number, r.text))
            events.append({"voicekey_callback": {**base, "keypress": r.keypress}})
        if ending in FAILURES:
            code, reason = FAILURES[ending]
            r.outcome = reason
            events.append({"voice_failure_callback": {**base, "failure_code": code,
                                                      "failure_reason": reason}})
        else:
            r.outcome = PROMPT.get(ending, "1")
            events.append({"voiceprompt_callback": {
                **base, "result": PROMPT.get(ending, "1"), "accept_time": now,
                "start_calltime": now, "end_calltime": now, "fee": "1"}})
        if self.out_of_order:
            events.reverse()
        await asyncio.sleep(self.step_delay_s + self.late_s)
        r.reported_at = self.clock()
        for event in events:
            await self._push("voice", event)
            await asyncio.sleep(self.step_delay_s)

    async def _push(self, hook: str, payload: Any) -> int:
        url = self.urls.get(hook)
        if not url or self._http is None:
            return 0
        status = 0
        for _ in range(2 if self.duplicate else 1):
            try:
                async with self._http.post(url, json=payload) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            self.pushes.append((url, payload, status))
        return status


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d %H:%M:%S")
