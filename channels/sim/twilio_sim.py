"""A Twilio-compatible HTTP server for the demo and the tests.

It serves the two REST calls the channels make (Messages.json, Calls.json) with Twilio's
auth, JSON shapes and error bodies, then plays the provider's part: signed status callbacks,
the DTMF Gather action of a call, and inbound SMS replies, as the shared `OfficerModel`
decides. Point a channel's `api_base` at `start()`'s URL; nothing else changes.

Behaviour knobs: `failures` maps a phone number to a Twilio error code: REST codes (21211,
21610, 21614, 21215, ...) are answered with HTTP 400, 20429 with HTTP 429 and Retry-After,
500/503 with that status, and 3xxxx codes (30003 ...) are accepted and fail later in the
status callbacks. `out_of_order` sends "delivered" before "sent". `unanswered` lists what
happens to calls of people who do not confirm ("no-answer", "busy", "answered": picked up,
no key), chosen deterministically per person and message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import defusedxml.ElementTree as SafeET
import yarl
from aiohttp import web
from twilio.request_validator import RequestValidator

from channels.sim.officers import SMS_FAILURES, OfficerModel, Script, Turns
from channels.sim.prepared import PreparedRequest

API = "/2010-04-01/Accounts/{sid}"
_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21211: "The 'To' number {to} is not a valid phone number.",
    21215: "Account not authorized to call {to}. Perhaps you need to enable some international "
           "permissions.",
    21216: "Account not allowed to call {to}",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
           "number: {to}.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number "
           "via SMS.",
    21614: "'To' number is not a valid mobile number",
    13224: "Invalid phone number",
}
_UNDELIVERED = frozenset({30003, 30005, 30006, 30008})  # the handset, not the message
#: A scripted call ending (`Script.calls`) as this simulator plays it.
_SCRIPTED_CALL = {"confirm": "confirm", "heard": "answered", "hangup": "answered",
                  "voicemail": "answered", "forwarded": "answered", "busy": "busy"}
_Life = Callable[["SimRecord", "int | None"], Coroutine[Any, Any, None]]


@dataclass
class SimRecord:
    """One accepted message or call, as the simulator saw it."""

    sid: str
    to: str
    from_: str
    form: dict[str, list[str]]  # every field as posted (StatusCallbackEvent repeats)
    status: str = "queued"
    statuses: list[str] = field(default_factory=list)  # as reported in callbacks
    digits: str | None = None  # calls: the key pressed
    at: float = 0.0  # when it was accepted, on the simulator's `clock`
    ending: str = ""  # a scripted person's ending of it (`Script`), else ""
    ended_at: float = 0.0  # when its final status was reported
    replies: list[tuple[float, str]] = field(default_factory=list)  # SMS answers (when, text)

    def get(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class SimWebhook:
    """One signed request the simulator made, and the answer it got (0: no connection)."""

    url: str
    params: dict[str, str]
    status: int
    body: str


class TwilioSimulator:
    """A local stand-in for api.twilio.com and for the people who get the messages."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        officers: OfficerModel,
        inbound_sms_url: str | None = None,
        *,
        failures: Mapping[str, int] | None = None,
        out_of_order: bool = False,
        step_delay_s: float = 0.01,
        retry_after_s: int = 1,
        unanswered: Sequence[str] = ("no-answer", "busy", "answered"),
        max_records: int = 10_000,
        scripted: Mapping[str, str | Script] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_sid = account_sid
        self.officers = officers
        self.inbound_sms_url = inbound_sms_url
        self.failures: dict[str, int] = dict(failures or {})
        self.out_of_order = out_of_order
        self.step_delay_s = step_delay_s
        self.retry_after_s = retry_after_s
        self.unanswered = tuple(unanswered) or ("no-answer",)
        #: number -> what the person does with each call and SMS (`Script`, turn by turn)
        self.scripted: dict[str, str | Script] = dict(scripted or {})
        self._turns = Turns(self.scripted)
        self.clock = clock  # the time its records carry (the engine's)
        self.messages: deque[SimRecord] = deque(maxlen=max_records)
        self.calls: deque[SimRecord] = deque(maxlen=max_records)
        self.webhooks: deque[SimWebhook] = deque(maxlen=max_records)
        self._token = auth_token
        self._signer = RequestValidator(auth_token)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port); returns the base URL for `api_base`."""
        app = web.Application()
        app.router.add_post(API + "/Messages.json", self._create_message)
        app.router.add_post(API + "/Calls.json", self._create_call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        bound = self._runner.addresses[0][1]
        return f"http://{host}:{bound}"

    async def wait_idle(self, within_s: float = 5.0) -> None:
        """Wait until every scheduled callback has been made (or `within_s` passed)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_s)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ REST API

    async def _create_message(self, request: web.Request) -> web.Response:
        return await self._create(request, "SM", self._message_life)

    async def _create_call(self, request: web.Request) -> web.Response:
        return await self._create(request, "CA", self._call_life)

    async def _create(self, request: web.Request, prefix: str, life: _Life) -> web.Response:
        if not self._authorized(request):
            return _error(20003, 401, detail="Your AccountSid or AuthToken was incorrect.")
        post = await request.post()
        form: dict[str, list[str]] = {}
        for key, value in post.items():
            form.setdefault(key, []).append(str(value))
        to, from_ = form.get("To", [""])[0], form.get("From", [""])[0]
        if not to:
            return _error(21604, 400, "A 'To' phone number is required.")
        if prefix == "SM" and not form.get("Body"):
            return _error(21602, 400, "Message body is required.")
        if prefix == "CA" and not (form.get("Twiml") or form.get("Url")):
            return _error(21205, 400, "Url parameter is required.")
        code = self.failures.get(to)
        if code == 20429:
            return _error(code, 429, headers={"Retry-After": str(self.retry_after_s)})
        if code is not None and 500 <= code < 600:
            return _error(20500, code, "Internal Server Error")
        if code is not None and not 30000 <= code < 40000:
            return _error(code, 400, _MESSAGES.get(code, "Bad request").format(to=to))
        record = SimRecord(f"{prefix}{uuid.uuid4().hex}", to, from_, form, at=self.clock())
        record.ending = self._turns.next("sms" if prefix == "SM" else "calls", to) or ""
        (self.messages if prefix == "SM" else self.calls).append(record)
        self._spawn(life(record, code))
        return web.json_response(self._resource(record), status=201)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (scheme.lower() == "basic" and login == self.account_sid == request.match_info["sid"]
                and hmac.compare_digest(password.encode(), self._token.encode()))

    def _resource(self, r: SimRecord) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))
        kind = "Messages" if r.sid.startswith("SM") else "Calls"
        body: dict[str, Any] = {
            "sid": r.sid, "account_sid": self.account_sid, "to": r.to, "from": r.from_,
            "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01",
            "date_created": now, "date_updated": now, "price": None, "price_unit": "USD",
            "uri": f"{API.format(sid=self.account_sid)}/{kind}/{r.sid}.json",
        }
        if kind == "Messages":
            text = r.get("Body") or ""
            single, part = (160, 153) if text.isascii() else (70, 67)  # roughly, as Twilio
            parts = 1 if len(text) <= single else -(-len(text) // part)
            body.update(body=text, num_segments=str(parts),
                        num_media="0", error_code=None, error_message=None, date_sent=None,
                        messaging_service_sid=None)
        else:
            body.update(parent_call_sid=None, start_time=None, end_time=None, duration=None,
                        answered_by=None, caller_name=None)
        return body

    # ------------------------------------------------------------------ what happens next

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _message_life(self, r: SimRecord, code: int | None) -> None:
        reaction = self.officers.react(r.to, r.get("Body") or "")
        if code is None and (not reaction.reachable or r.ending in SMS_FAILURES):
            code = 30003
        answers = r.ending == "confirm" if r.ending else reaction.answers
        final = "delivered" if code is None else (
            "undelivered" if code in _UNDELIVERED else "failed")
        steps = ["queued", final, "sent"] if self.out_of_order else ["queued", "sent", final]
        for status in steps:
            await asyncio.sleep(self.step_delay_s)
            r.status = status
            extra = {"ErrorCode": str(code)} if status == final and code is not None else {}
            await self._message_status(r, status, extra)
        r.ended_at = self.clock()
        if final == "delivered" and answers and self.inbound_sms_url:
            await asyncio.sleep(reaction.delay_s)
            await self.reply(r, random.Random(f"{r.to}|{r.get('Body')}").choice(["1", "收到"]))
            said = self.officers.report(r.to, r.get("Body") or "")
            if said is not None:
                await asyncio.sleep(reaction.delay_s)
                await self.reply(r, said)

    async def _message_status(self, r: SimRecord, status: str, extra: dict[str, str]) -> None:
        r.statuses.append(status)
        url = r.get("StatusCallback")
        if url:
            await self._signed_post(url, {
                "MessageSid": r.sid, "SmsSid": r.sid, "AccountSid": self.account_sid,
                "From": r.from_, "To": r.to, "MessageStatus": status, "SmsStatus": status,
                "ApiVersion": "2010-04-01", **extra})

    async def _call_life(self, r: SimRecord, code: int | None) -> None:
        twiml = r.get("Twiml") or ""
        reaction = self.officers.react(r.to, twiml)
        rnd = random.Random(f"{self.officers.seed}|{r.to}|{twiml}")
        outcome = "confirm" if reaction.answers else rnd.choice(self.unanswered)
        if code is not None or not reaction.reachable:
            outcome = "failed" if code is not None else "no-answer"
        elif r.ending:  # a powered-off phone rings out at Twilio: no-answer
            outcome = _SCRIPTED_CALL.get(r.ending, "no-answer")
        wanted = set(r.form.get("StatusCallbackEvent", [])) or {"completed"}
        seq = 0

        async def event(name: str, status: str, **extra: str) -> None:
            nonlocal seq
            r.status = status
            if name == "completed":
                r.ended_at = self.clock()
            await asyncio.sleep(self.step_delay_s)
            if name in wanted:
                r.statuses.append(status)
                await self._call_status(r, status, seq, extra)
                seq += 1

        await event("initiated", "initiated")
        if outcome == "failed":
            await event("completed", "failed", ErrorCode=str(code))
            return
        await event("ringing", "ringing")
        if outcome in ("no-answer", "busy"):
            await event("completed", outcome)
            return
        await event("answered", "in-progress")
        if outcome == "confirm":
            await asyncio.sleep(reaction.delay_s)
            await self._press(r, "1")
        await event("completed", "completed", CallDuration="20", Duration="1")

    async def _press(self, r: SimRecord, digits: str) -> int:
        """Post the first Gather's action with the key, as Twilio does when a key is pressed."""
        req = self.prepare_press(r, digits)
        return await self._post(req) if req is not None else 0

    async def _call_status(self, r: SimRecord, status: str, seq: int,
                           extra: dict[str, str]) -> None:
        url = r.get("StatusCallback")
        if url:
            await self._signed_post(url, {
                "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": r.sid,
                "CallStatus": status, "Direction": "outbound-api", "From": r.from_, "To": r.to,
                "Called": r.to, "Caller": r.from_, "CallbackSource": "call-progress-events",
                "SequenceNumber": str(seq), "Timestamp": format_datetime(datetime.now(UTC)),
                **extra})

    def _sign(self, url: str, params: dict[str, str]) -> PreparedRequest:
        """A webhook signed as Twilio signs it (X-Twilio-Signature over URL and parameters)."""
        return PreparedRequest(url, urlencode(params).encode(), {
            "X-Twilio-Signature": self._signer.compute_signature(url, params),
            "Content-Type": "application/x-www-form-urlencoded"})

    async def _signed_post(self, url: str, params: dict[str, str]) -> int:
        """POST a signed webhook as Twilio does; the app's HTTP status (0: no answer)."""
        return await self._post(self._sign(url, params))

    async def _post(self, req: PreparedRequest) -> int:
        params = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        if self._http is None:
            return 0  # not started, or stopped
        try:
            # encoded=True: send the URL exactly as given, as Twilio does; the signature
            # covers that string, and re-quoting it would break the check.
            async with self._http.post(yarl.URL(req.url, encoded=True), data=req.body,
                                       headers=req.headers) as resp:
                self.webhooks.append(SimWebhook(req.url, params, resp.status, await resp.text()))
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            self.webhooks.append(SimWebhook(req.url, params, 0, ""))
            return 0

    # ----------------------------------------------------------------- driven from outside
    # (a load generator: the officers of the benchmark press and reply when told to)

    async def press(self, call: SimRecord, digits: str = "1") -> int:
        """The person on `call` presses `digits`: Twilio's signed Gather action webhook."""
        return await self._press(call, digits)

    async def reply(self, message: SimRecord, body: str = "1") -> int:
        """The recipient of `message` answers it by SMS: Twilio's signed inbound webhook."""
        req = self.prepare_reply(message, body)
        if req is not None:
            message.replies.append((self.clock(), body))
        return await self._post(req) if req is not None else 0

    def prepare_press(self, call: SimRecord, digits: str = "1") -> PreparedRequest | None:
        """What `press` sends, signed and not sent (None: the call asked for no key)."""
        gather = SafeET.fromstring(call.get("Twiml") or "<Response/>").find("Gather")
        action = gather.get("action") if gather is not None else None
        if not action:
            return None
        call.digits = digits
        return self._sign(action, {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": call.sid,
            "CallStatus": "in-progress", "Direction": "outbound-api", "From": call.from_,
            "To": call.to, "Called": call.to, "Caller": call.from_, "Digits": digits,
            "FinishedOnKey": "", "msg": "Gather End"})

    def prepare_reply(self, message: SimRecord, body: str = "1") -> PreparedRequest | None:
        """What `reply` sends, signed and not sent (None: no inbound SMS webhook is set)."""
        if not self.inbound_sms_url:
            return None
        return self._sign(self.inbound_sms_url, {
            "MessageSid": f"SM{uuid.uuid4().hex}", "SmsSid": "", "AccountSid": self.account_sid,
            "From": message.to, "To": message.from_, "Body": body, "NumMedia": "0",
            "NumSegments": "1", "ApiVersion": "2010-04-01"})


def _error(code: int, status: int, message: str | None = None, *, detail: str | None = None,
           headers: Mapping[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "code": code, "message": message or _MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status, headers=headers)
