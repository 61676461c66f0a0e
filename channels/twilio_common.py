"""What the Twilio SMS and voice channels share: config, the SDK client, errors, webhooks.

The SDK's own async HTTP client is replaced by `RebasedHttpClient`, which sends every request
to the configured `api_base` instead of api.twilio.com: pointing `api_base` at the bundled
simulator is the only difference between a test run and production.
"""

from __future__ import annotations

import base64
import contextvars
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import structlog
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from warnbus.plugin import (
    ChannelConfig,
    ChannelError,
    PermanentChannelError,
    Secret,
    TransientChannelError,
    admit_request,
    mask_phone,
    mask_phones_in,
)

log = structlog.get_logger("channels.twilio")
_sdk_log = logging.getLogger("twilio.http_client")

T = TypeVar("T")
FormHandler = Callable[[web.Request, Mapping[str, str]], Awaitable[web.StreamResponse]]

#: Codes that mean "this request will never succeed", whatever the channel.
COMMON_PERMANENT: Mapping[int, str] = {
    20003: "authentication failed: check account_sid and auth_token",
    20404: "resource not found: check account_sid",
    21212: "the 'From' number is not valid: check from_number",
}
#: Codes that mean "later": rate limits and queue overflows.
TRANSIENT_CODES = frozenset({20429, 14107, 21611, 30001})

# Set by RebasedHttpClient for each response: TwilioRestException drops the response
# headers, and Retry-After lives there. A ContextVar is per task, so concurrent sends
# never see each other's value.
_RETRY_AFTER: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None)


class TwilioConfig(ChannelConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Settings shared by the Twilio channels. `auth_token` is a Secret: never repr'd."""

    type: str
    callback_url: str  # public base of this channel's webhooks, e.g. https://x/hooks/sms
    account_sid: str
    auth_token: Secret
    from_number: str
    api_base: str = "https://api.twilio.com"
    timeout_s: float = 10.0
    rate_per_s: float = 1.0  # Twilio's default for one long code; raise it for short codes

    def __post_init__(self) -> None:
        for field in ("callback_url", "api_base"):
            parts = urlsplit(getattr(self, field))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{field} must be an absolute http(s) URL")
        if not self.account_sid or not self.auth_token or not self.from_number:
            raise ValueError("account_sid, auth_token and from_number must not be empty")
        if self.timeout_s <= 0 or self.rate_per_s <= 0:
            raise ValueError("timeout_s and rate_per_s must be positive")


class RebasedHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """The SDK's HTTP transport on aiohttp, sending to `api_base` whatever host it was given."""

    def __init__(self, api_base: str, timeout_s: float) -> None:
        super().__init__(_sdk_log, True, timeout_s)
        base = urlsplit(api_base)
        self._scheme, self._netloc = base.scheme, base.netloc
        self._prefix = base.path.rstrip("/")
        self._session: aiohttp.ClientSession | None = None  # made inside the running loop

    def rebase(self, url: str) -> str:
        u = urlsplit(url)
        return u._replace(scheme=self._scheme, netloc=self._netloc,
                          path=self._prefix + u.path).geturl()

    async def request(
        self, method: str, uri: str, params: dict[str, object] | None = None,
        data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the SDK passes timeout=)
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        # doseq: list values (StatusCallbackEvent) become repeated fields, as Twilio expects
        body = urlencode(data or {}, doseq=True).encode() if method.upper() != "GET" else None
        query = urlencode(params or {}, doseq=True)
        url = self.rebase(uri) + (f"?{query}" if query else "")
        headers = dict(headers or {})
        if auth:  # by hand: aiohttp's BasicAuth is deprecated, its replacement is new
            pair = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        _RETRY_AFTER.set(None)
        async with self._session.request(
            method.upper(), url, data=body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as resp:
            text = await resp.text()
            _RETRY_AFTER.set(parse_retry_after(resp.headers.get("Retry-After")))
            return TwilioResponse(resp.status, text, dict(resp.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def build_client(config: TwilioConfig) -> tuple[Client, RebasedHttpClient]:
    """An SDK client bound to `config` (its base URL, credentials and timeout)."""
    http = RebasedHttpClient(config.api_base, config.timeout_s)
    client = Client(config.account_sid, config.auth_token.reveal(), http_client=http)
    # The SDK reads TWILIO_EDGE/TWILIO_REGION from the environment into the host name;
    # the config alone decides where requests go.
    client.edge = client.region = None
    # The SDK imports its API modules on first use: do it now, at start-up, rather than in
    # the first send of the first warning (a tenth of a second of imports there).
    _ = (client.calls, client.messages)
    return client, http


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify(
    e: TwilioRestException | TwilioServiceException, label: str, address: str,
    permanent: Mapping[int, str], retry_after: float | None = None,
) -> ChannelError:
    """Twilio's answer as our error: permanent (do not retry this address) or transient."""
    status = int(e.status or 0)
    code = int(e.code) if e.code else status
    where = f"{label} to {mask_phone(address)}"
    vendor = mask_phones_in(str(getattr(e, "msg", "") or getattr(e, "title", "")))
    if code in TRANSIENT_CODES or status in (408, 429) or status >= 500:
        return TransientChannelError(
            f"{where}: Twilio is busy or failing (HTTP {status}, code {code}); will retry",
            retry_after=retry_after, provider_code=str(code))
    reason = permanent.get(code) or COMMON_PERMANENT.get(code)
    if reason is None:  # any other 4xx: the same request fails the same way again
        reason = f"rejected by Twilio: {vendor}" if vendor else "rejected by Twilio"
    return PermanentChannelError(f"{where}: {reason} (Twilio {code})", provider_code=str(code))


async def guarded(call: Awaitable[T], label: str, address: str,
                  permanent: Mapping[int, str]) -> T:
    """Await an SDK call; vendor and network errors become ours at this edge."""
    try:
        return await call
    except (TwilioRestException, TwilioServiceException) as e:
        raise classify(e, label, address, permanent, _RETRY_AFTER.get()) from e
    except (aiohttp.ClientError, TimeoutError) as e:
        # Twilio may have accepted a request whose answer was lost; a retry can then send
        # twice. For a warning a duplicate is better than silence, so still retry.
        raise TransientChannelError(
            f"{label} to {mask_phone(address)}: network error ({type(e).__name__})") from e
    except TwilioException as e:
        raise TransientChannelError(f"{label}: unexpected answer from Twilio ({e})") from e


def ids_query(campaign_id: str, delivery_id: str, target_id: str) -> str:
    """The query string our callbacks carry, so a callback names its delivery."""
    return urlencode({"c": campaign_id, "d": delivery_id, "t": target_id})


def ids_of(query: Mapping[str, str]) -> tuple[str, str, str] | None:
    c, d, t = query.get("c", ""), query.get("d", ""), query.get("t", "")
    return (c, d, t) if c and d and t else None


# The empty TwiML answer to a callback (`<Response />`, the same for messages and calls),
# built once: status callbacks come several per message, and the XML writer is not free.
EMPTY_TWIML = str(VoiceResponse())


def twiml_response(xml: str) -> web.Response:
    return web.Response(text=xml, content_type="application/xml", charset="utf-8")


class SignedWebhooks:
    """Wraps webhook handlers so that only requests signed by Twilio reach them.

    The signature covers the URL Twilio was given, so it is checked against the public
    `callback_url` (not the URL this process sees behind a proxy) plus the raw query string.
    """

    def __init__(self, channel: str, callback_url: str, auth_token: str) -> None:
        self.channel = channel
        self.base = callback_url.rstrip("/")
        self._validator = RequestValidator(auth_token)

    def public_url(self, path: str, raw_query: str) -> str:
        return f"{self.base}/{path}" + (f"?{raw_query}" if raw_query else "")

    def valid(self, url: str, form: Mapping[str, Any], signature: str) -> bool:
        """Whether `signature` is Twilio's for `url` and `form`.

        The SDK's `validate` signs the URL twice, with and without its port (Twilio is not
        consistent about which it signed): a quarter of the webhooks' CPU in a profile. The URL
        as given is one of the two, and the one Twilio nearly always signed: try it alone
        first, then let the SDK try both."""
        if not signature.isascii():  # base64; compare_digest refuses other str
            return False
        if not all(isinstance(v, str) for v in form.values()):
            return False  # a file upload: Twilio never sends one, and it cannot be signed
        if hmac.compare_digest(self._validator.compute_signature(url, form), signature):
            return True
        return bool(self._validator.validate(url, form, signature))

    def wrap(self, path: str, handler: FormHandler) -> Callable[[web.Request], Awaitable[Any]]:
        """`handler` behind the signature check; the check comes before anything else, and
        decides which rate limit the request spends (`models.RequestGate`)."""

        async def checked(request: web.Request) -> web.StreamResponse:
            form = await request.post()
            url = self.public_url(path, request.rel_url.raw_query_string)
            signature = request.headers.get("X-Twilio-Signature", "")
            signed = bool(signature) and self.valid(url, form, signature)
            await admit_request(signed)
            if not signed:
                log.warning("twilio webhook rejected: bad or missing signature",
                            channel=self.channel, path=path, signed=bool(signature),
                            phone_masked=mask_phone(str(form.get("From", form.get("To", "")))))
                return web.Response(status=403, text="invalid signature")
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return await handler(request, fields)

        return checked
