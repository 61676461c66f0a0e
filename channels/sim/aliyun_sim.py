"""An Aliyun-compatible SMS and voice server (dysmsapi / dyvmsapi 2017-05-25) for tests and demos.

It checks each request's ACS3-HMAC-SHA256 signature as Aliyun does (wrong secret:
SignatureDoesNotMatch; unknown key: InvalidAccessKeyId.NotFound; a stale x-acs-date or a
reused nonce refused), enforces the registered signatures and templates with their variable
rules (isv.SMS_TEMPLATE_ILLEGAL, isv.TEMPLATE_MISSING_PARAMETERS, isv.PARAM_LENGTH_LIMIT,
isv.PARAM_NOT_SUPPORT_URL) and the per-number flow control (isv.BUSINESS_LIMIT_CONTROL), then
plays the provider's part: SmsReport / SmsUp / VoiceCallReport / VoiceReport pushes (JSON
arrays; optionally duplicated, late, out of order) or the same facts served to
QuerySendDetails / QueryCallDetailByCallId. Simulated officers reply, press 1, listen, hang
up early, or let voicemail or forwarding answer (`OfficerModel`, `CallHabits`, `scripted`);
one who pressed 1 may press a report's keys after it ("confirm:435#" scripted), and the
key report (status 300000) and the call record carry every key in `dtmf` ("1435#").
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
from urllib.parse import quote

import aiohttp
from aiohttp import web

from channels.sim.cn_limits import ALIYUN_SMS, ALIYUN_VOICE, CHINA, NumberCounter, NumberLimits
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

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_SKEW_S = 900.0  # x-acs-date may be this far from the server's clock
SMS_VAR_MAX = 35
VOICE_VARS_MAX = 250
_VAR = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_MOBILE = re.compile(r"^1\d{10}$")
#: Final call status per ending (see channels/cn_outcomes.py for what they mean).
CALL_STATUS = {"confirm": "200000", "heard": "200000", "hangup": "200001", "busy": "200002",
               "no-answer": "200003", "empty": "200004", "off": "200010", "stopped": "200011",
               "voicemail": "200000", "forwarded": "200000", "carrier-night": "200118",
               "carrier-limit": "200119"}
SMART = {"voicemail": "INTELLIGENT_ANSWER", "forwarded": "CALL_FORWARDING"}
HTTP_ERRORS = {"Throttling.User": 400, "ServiceUnavailable": 503, "InternalError": 500}


class AcsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class SmsRecord:
    biz_id: str
    number: str
    template: str
    params: dict[str, str]
    text: str
    out_id: str
    sent_at: float
    status: int = 1  # QuerySendDetails SendStatus: 1 waiting, 2 failed, 3 delivered
    err_code: str = ""
    ending: str = ""  # what its recipient does with it (a `Script`'s SMS ending, if any)
    reported_at: float = 0.0  # when the delivery report was pushed
    replies: list[tuple[float, str]] = field(default_factory=list)  # (when, text) sent back


@dataclass
class CallRecord:
    call_id: str
    number: str
    api: str  # IvrCall | SingleCallByTts
    template: str
    params: dict[str, str]
    text: str
    out_id: str
    sent_at: float
    ending: str = ""
    keys: str = ""  # a scripted report's keys after the confirming 1 ("confirm:435#")
    state: str = ""  # the final status code once the call ended
    dtmf: str = ""
    reports: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float = 0.0  # when the call ended (its final report)


@dataclass(frozen=True)
class Push:
    url: str
    payload: list[dict[str, Any]]
    status: int  # the app's HTTP status (0: no connection)
    body: str


def acs3_signature(secret: str, method: str, path: str, query: Mapping[str, str],
                   headers: Mapping[str, str], signed: list[str], payload_hash: str) -> str:
    """ACS3-HMAC-SHA256 over the canonical request, as Aliyun computes it."""
    canon_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    canonical = "\n".join([method, path or "/", canon_query, canon_headers, ";".join(signed),
                           payload_hash])
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


class AliyunSimulator(SimServer):
    """A local stand-in for dysmsapi/dyvmsapi.aliyuncs.com and the people they reach."""

    def __init__(
        self, access_key_id: str, access_key_secret: str, officers: OfficerModel, *,
        sign_names: tuple[str, ...] = ("应急管理局",),
        sms_templates: Mapping[str, str] | None = None,
        voice_templates: Mapping[str, str] | None = None,
        show_numbers: tuple[str, ...] = (),
        sms_report_url: str | None = None, sms_up_url: str | None = None,
        voice_report_url: str | None = None, voice_call_report_url: str | None = None,
        sms_limits: NumberLimits = ALIYUN_SMS, voice_limits: NumberLimits = ALIYUN_VOICE,
        habits: CallHabits | None = None,
        scripted: Mapping[str, str | Script] | None = None,
        failures: Mapping[str, str] | None = None, duplicate: bool = False,
        late_s: float = 0.0, out_of_order: bool = False, step_delay_s: float = 0.01,
        clock: Callable[[], float] = time.time,
        auth_clock: Callable[[], float] = time.time, max_records: int = 10_000,
    ) -> None:
        super().__init__()
        self.keys = {access_key_id: access_key_secret}
        self.officers = officers
        self.sign_names = set(sign_names)
        self.sms_templates = dict(sms_templates or {})
        self.voice_templates = dict(voice_templates or {})
        self.show_numbers = set(show_numbers)
        self.urls = {"sms-report": sms_report_url, "sms-up": sms_up_url,
                     "voice-report": voice_report_url, "voice-call-report": voice_call_report_url}
        self.sms_limit = NumberCounter(sms_limits)
        self.voice_limit = NumberCounter(voice_limits)
        self.habits = habits or CallHabits()
        #: number -> its ending ("confirm", "voicemail", ...) or a `Script` (turn by turn)
        self.scripted: dict[str, str | Script] = dict(scripted or {})
        self._turns = Turns(self.scripted)
        self.failures = dict(failures or {})  # number -> error code answered to a send
        self.duplicate, self.late_s, self.out_of_order = duplicate, late_s, out_of_order
        self.step_delay_s = step_delay_s
        self.clock = clock  # the provider's business time: limits, nights, reports
        self.auth_clock = auth_clock  # the time request signatures are checked against
        self.messages: deque[SmsRecord] = deque(maxlen=max_records)
        self.calls: deque[CallRecord] = deque(maxlen=max_records)
        self.pushes: deque[Push] = deque(maxlen=max_records)
        self.refusals: deque[tuple[str, str]] = deque(maxlen=max_records)  # (action, code)
        self._nonces: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return self._handle

    # ------------------------------------------------------------------ the API

    async def _handle(self, request: web.Request) -> web.Response:
        rid = str(uuid.uuid4()).upper()
        body = await request.read()
        try:
            self._verify(request, body)
            action = request.headers.get("x-acs-action", "")
            handler = self._actions().get(action)
            if handler is None:
                raise AcsError("InvalidAction.NotFound", f"Specified api {action} is not found",
                               404)
            params = dict(request.query)
            result = handler(params)
        except AcsError as e:
            self.refusals.append((request.headers.get("x-acs-action", ""), e.code))
            if e.status == 200:  # business refusals: HTTP 200 with a Code other than OK
                return web.json_response({"Code": e.code, "Message": e.message,
                                          "RequestId": rid})
            return web.json_response({"RequestId": rid, "HostId": request.host, "Code": e.code,
                                      "Message": e.message}, status=e.status)
        return web.json_response({"Code": "OK", "Message": "OK", "RequestId": rid, **result})

    def _actions(self) -> dict[str, Callable[[dict[str, str]], dict[str, Any]]]:
        return {"SendSms": self._send_sms, "QuerySendDetails": self._query_sms,
                "IvrCall": self._ivr_call, "SingleCallByTts": self._tts_call,
                "QueryCallDetailByCallId": self._query_call}

    def _verify(self, request: web.Request, body: bytes) -> None:
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        if algorithm != ALGORITHM or not {"Credential", "SignedHeaders", "Signature"} <= set(
                parts):
            raise AcsError("MissingAuthorization", "Authorization is mandatory for this action.")
        secret = self.keys.get(parts["Credential"])
        if secret is None:
            raise AcsError("InvalidAccessKeyId.NotFound", "Specified access key is not found.",
                           404)
        payload_hash = hashlib.sha256(body).hexdigest()
        if request.headers.get("x-acs-content-sha256", "") != payload_hash:
            raise AcsError("IncompleteSignature", "The request body does not match its hash.")
        try:
            sent = datetime.strptime(request.headers.get("x-acs-date", ""),
                                     "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError as e:
            raise AcsError("InvalidTimeStamp.Format", "x-acs-date is not ISO 8601.") from e
        if abs(self.auth_clock() - sent) > MAX_SKEW_S:
            raise AcsError("InvalidTimeStamp.Expired",
                           "Specified time stamp or date value is expired.")
        signed = parts["SignedHeaders"].split(";")
        if "host" not in signed or any(h != h.lower() for h in signed):
            raise AcsError("IncompleteSignature", "The host header must be signed.")
        headers = {k.lower(): v for k, v in request.headers.items()}
        want = acs3_signature(secret, request.method, request.path, dict(request.query),
                              headers, signed, payload_hash)
        if not hmac.compare_digest(want, parts["Signature"]):
            raise AcsError("SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation.")
        nonce = request.headers.get("x-acs-signature-nonce", "")
        now = self.auth_clock()
        self._nonces = {n: t for n, t in self._nonces.items() if now - t < MAX_SKEW_S}
        if not nonce or nonce in self._nonces:
            raise AcsError("SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[nonce] = now

    def _refuse_number(self, number: str) -> None:
        code = self.failures.get(number)
        if code is not None:
            raise AcsError(code, f"simulated refusal {code}", HTTP_ERRORS.get(code, 200))
        if not (_MOBILE.match(number) or re.match(r"^0\d{9,11}$", number)):
            raise AcsError("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", 200)

    def _fill(self, content: str, raw: str, per_var: int | None, total: int | None
              ) -> tuple[dict[str, str], str]:
        try:
            values = json.loads(raw) if raw else {}
        except ValueError as e:
            raise AcsError("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值", 200) from e
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise AcsError("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值", 200)
        wanted = _VAR.findall(content)
        missing = [v for v in wanted if not values.get(v)]
        if missing:
            raise AcsError("isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量: {missing[0]}", 200)
        for name in wanted:
            if per_var is not None and len(values[name]) > per_var:
                raise AcsError("isv.PARAM_LENGTH_LIMIT", f"参数超出长度限制: {name}", 200)
            if _URL.search(values[name]):
                raise AcsError("isv.PARAM_NOT_SUPPORT_URL", "不支持URL", 200)
        if total is not None and sum(len(values[n]) for n in set(wanted)) >= total:
            raise AcsError("isv.PARAM_LENGTH_LIMIT", "变量总长度超出限制", 200)
        return values, _VAR.sub(lambda m: values[m.group(1)], content)

    def _send_sms(self, p: dict[str, str]) -> dict[str, Any]:
        number = p.get("PhoneNumbers", "")
        self._refuse_number(number)
        if p.get("SignName") not in self.sign_names:
            raise AcsError("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名", 200)
        content = self.sms_templates.get(p.get("TemplateCode", ""))
        if content is None:
            raise AcsError("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板", 200)
        values, text = self._fill(content, p.get("TemplateParam", ""), SMS_VAR_MAX, None)
        refused = self.sms_limit.admit(number, self.clock())
        if refused:
            raise AcsError(refused, "触发号码天级/小时级/分钟级流控", 200)
        text = f"【{p['SignName']}】{text}"
        r = SmsRecord(f"{int(self.clock() * 1000)}^{uuid.uuid4().int % 10**10}", number,
                      p["TemplateCode"], values, text, p.get("OutId", ""), self.clock())
        r.ending = scripted_keys(self._turns.next("sms", number) or "")[0]
        self.messages.append(r)
        self._spawn(self._sms_life(r))
        return {"BizId": r.biz_id}

    def _query_sms(self, p: dict[str, str]) -> dict[str, Any]:
        biz, number = p.get("BizId", ""), p.get("PhoneNumber", "")
        rows = [r for r in self.messages if r.number == number and (not biz or r.biz_id == biz)]
        dtos = [{"PhoneNum": r.number, "SendStatus": r.status, "ErrCode": r.err_code,
                 "TemplateCode": r.template, "Content": r.text, "OutId": r.out_id,
                 "SendDate": _local(r.sent_at), "ReceiveDate": _local(r.sent_at)}
                for r in rows]
        return {"TotalCount": len(dtos), "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}}

    def _place_call(self, p: dict[str, str], api: str, code_field: str, params_field: str
                    ) -> dict[str, Any]:
        number = p.get("CalledNumber", "")
        self._refuse_number(number)
        show = p.get("CalledShowNumber", "")
        if self.show_numbers and show not in self.show_numbers:
            raise AcsError("isv.DISPLAY_NUMBER_ILLEGAL", "号显号码不合法", 200)
        content = self.voice_templates.get(p.get(code_field, ""))
        if content is None:
            raise AcsError("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板ID不合法", 200)
        if api == "IvrCall" and p.get("MenuKeyMap.1.Code") not in self.voice_templates:
            raise AcsError("isv.TTS_TEMPLATE_ILLEGAL", "按键对应的TTS模板ID不合法", 200)
        values, text = self._fill(content, p.get(params_field, ""), None, VOICE_VARS_MAX)
        refused = self.voice_limit.admit(number, self.clock())
        if refused:
            raise AcsError(refused, "触发号码分钟级/小时级/天级流控", 200)
        r = CallRecord(f"{uuid.uuid4().int % 10**12}^{uuid.uuid4().int % 10**12}", number, api,
                       p[code_field], values, text, p.get("OutId", ""), self.clock())
        r.ending, r.keys = scripted_keys(self._ending(r))
        self.calls.append(r)
        self._spawn(self._call_life(r, p))
        return {"CallId": r.call_id}

    def _ivr_call(self, p: dict[str, str]) -> dict[str, Any]:
        return self._place_call(p, "IvrCall", "StartCode", "StartTtsParams")

    def _tts_call(self, p: dict[str, str]) -> dict[str, Any]:
        return self._place_call(p, "SingleCallByTts", "TtsCode", "TtsParam")

    def _query_call(self, p: dict[str, str]) -> dict[str, Any]:
        r = next((c for c in self.calls if c.call_id == p.get("CallId")), None)
        if r is None or not r.state:
            return {"Data": None}
        return {"Data": json.dumps({
            "callee": r.number, "caller": "", "state": r.state,
            "stateDesc": r.ending, "duration": 20 if r.ending in ("confirm", "heard") else 0,
            "startDate": _local(r.sent_at), "endDate": _local(r.sent_at + 20),
            "gmtCreate": _local(r.sent_at)}, ensure_ascii=False)}

    # ------------------------------------------------------------------ what happens next

    async def _sms_life(self, r: SmsRecord) -> None:
        reaction = self.officers.react(r.number, r.text)
        ending = r.ending
        delivered = reaction.reachable and ending not in SMS_FAILURES
        await asyncio.sleep(self.step_delay_s + self.late_s)
        r.status, r.err_code = (3, "DELIVERED") if delivered else (2, "MK:0005")
        r.reported_at = self.clock()
        await self._push("sms-report", [{
            "phone_number": r.number, "send_time": _local(r.sent_at),
            "report_time": _local(self.clock()), "success": delivered, "err_code": r.err_code,
            "err_msg": "用户接收成功" if delivered else "用户无法接收", "sms_size": "1",
            "biz_id": r.biz_id, "out_id": r.out_id}])
        answers = ending == "confirm" if ending else reaction.answers
        if delivered and answers:
            await asyncio.sleep(reaction.delay_s if not ending else self.step_delay_s)
            await self.reply(r, "收到")

    async def reply(self, r: SmsRecord, content: str = "1") -> int:
        """The recipient of `r` answers it: an SmsUp push."""
        r.replies.append((self.clock(), content))
        return await self._push("sms-up", [{
            "phone_number": r.number, "send_time": _local(self.clock()), "content": content,
            "sign_name": next(iter(self.sign_names), ""), "dest_code": "1234",
            "sequence_id": uuid.uuid4().int % 10**9}])

    def _ending(self, r: CallRecord) -> str:
        scripted = self._turns.next("calls", r.number)
        if scripted:
            return scripted
        reaction = self.officers.react(r.number, r.text)
        if not reaction.reachable:
            return "off"
        if reaction.answers:
            return "confirm"
        return self.habits.ending(self.officers.seed, r.number, r.text)

    async def _call_life(self, r: CallRecord, p: dict[str, str]) -> None:
        scripted = bool(self.scripted.get(r.number))
        ending, keys = r.ending, r.keys
        if ending == CONFIRM and r.api != "IvrCall":
            ending = r.ending = "heard"  # a TTS call takes no key
        if ending == CONFIRM and not scripted:
            keys = self.officers.keypad(r.number, r.text)
        # Every key of the call in one string: the 1 (the menu key, which plays the
        # confirmation template and its report prompt), then a report's keys up to #.
        r.dtmf = "1" + keys if ending == CONFIRM else ""
        progress: list[dict[str, Any]] = []
        now = _local(self.clock())
        if ending in SMART:
            progress.append({"call_id": r.call_id, "status_code": "200100", "dtmf": "",
                             "smart_status_code": SMART[ending], "status_time": now,
                             "out_id": r.out_id})
        if r.dtmf:
            progress.append({"call_id": r.call_id, "status_code": "300000", "dtmf": r.dtmf,
                             "smart_status_code": "ANSWERED", "status_time": now,
                             "out_id": r.out_id})
        answered = ending in ("confirm", "heard", "hangup", "voicemail", "forwarded")
        final = {"call_id": r.call_id, "status_code": CALL_STATUS.get(ending, "200003"),
                 "status_msg": ending, "callee": r.number,
                 "caller": p.get("CalledShowNumber", ""), "dtmf": r.dtmf, "out_id": r.out_id,
                 "duration": "20" if answered else "0", "toll_type": "LOCAL",
                 "hangup_direction": "用户" if ending == "hangup" else "机器",
                 "start_time": now if answered else "", "end_time": now,
                 "originate_time": now, "voice_type": "voice"}
        r.reports = [*progress, final]
        steps = [("voice-call-report", [x]) for x in progress] + [("voice-report", [final])]
        if self.out_of_order:
            steps.reverse()
        await asyncio.sleep(self.step_delay_s + self.late_s)
        r.state, r.ended_at = final["status_code"], self.clock()
        for hook, payload in steps:
            await self._push(hook, payload)
            await asyncio.sleep(self.step_delay_s)

    async def _push(self, hook: str, payload: list[dict[str, Any]]) -> int:
        url = self.urls.get(hook)
        if not url or self._http is None:
            return 0
        status = 0
        for _ in range(2 if self.duplicate else 1):
            try:
                async with self._http.post(url, json=payload) as resp:
                    status = resp.status
                    self.pushes.append(Push(url, payload, status, await resp.text()))
            except (aiohttp.ClientError, TimeoutError):
                self.pushes.append(Push(url, payload, 0, ""))
        return status


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d %H:%M:%S")
