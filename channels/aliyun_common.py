"""What the Aliyun SMS and voice channels share: config, the Tea SDK client, errors.

The SDKs (alibabacloud-dysmsapi20170525, alibabacloud-dyvmsapi20170525) sign each request
with ACS3-HMAC-SHA256 (the V3 signature: a canonical request of method, path, sorted query,
the signed `host`/`x-acs-*` headers and the body's SHA-256, HMAC'd with the AccessKey
secret); `Config(endpoint=..., protocol="HTTP")` is all it takes to point them at the bundled
simulator. Their `*_with_options_async` methods are asyncio-native (aiohttp inside).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Literal, Protocol, TypeVar

import aiohttp
import msgspec
from alibabacloud_tea_openapi.utils_models import Config as SdkConfig
from darabonba.exceptions import ResponseException
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from channels.cn_common import HookConfig
from channels.cn_outcomes import classify
from channels.cn_templates import ALIYUN_VAR, TemplateConfig, TemplateRules
from warnbus.plugin import Secret, TransientChannelError, breaker_key_for, mask_phone

T = TypeVar("T")
PROVIDER = "Aliyun"
#: Aliyun SMS templates: `${name}` variables of 1-35 characters, content up to 500.
SMS_RULES = TemplateRules(PROVIDER, ALIYUN_VAR, positional=False, var_max=35)
#: Aliyun TTS templates: no per-variable limit, all variables under 250 characters.
VOICE_RULES = TemplateRules(PROVIDER, ALIYUN_VAR, positional=False, var_max=249,
                            var_total_max=249)


class AliyunConfig(HookConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Settings shared by the Aliyun channels. `access_key_secret` is secret: never repr'd."""

    type: str
    access_key_id: str
    access_key_secret: Secret
    templates: dict[str, TemplateConfig]
    endpoint: str = ""  # host[:port]; empty: the product's public endpoint
    protocol: Literal["HTTPS", "HTTP"] = "HTTPS"
    region_id: str = "cn-hangzhou"
    rate_per_s: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.access_key_id or not self.access_key_secret:
            raise ValueError("access_key_id and access_key_secret must not be empty")
        if "/" in self.endpoint or "://" in self.endpoint:
            raise ValueError("endpoint is a host[:port], without scheme or path")
        if self.rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")


def breaker_key(c: AliyunConfig, default_endpoint: str) -> str:
    """The configured breaker key, else the AccessKey at the product's endpoint."""
    return breaker_key_for(c, "aliyun", c.access_key_id, c.endpoint or default_endpoint)


def sdk_config(c: AliyunConfig, default_endpoint: str) -> SdkConfig:
    """The SDK's Config for `c`: its credentials, endpoint, protocol and timeouts."""
    ms = int(c.timeout_s * 1000)
    return SdkConfig(access_key_id=c.access_key_id,
                     access_key_secret=c.access_key_secret.reveal(),
                     endpoint=c.endpoint or default_endpoint, protocol=c.protocol,
                     region_id=c.region_id, read_timeout=ms, connect_timeout=ms)


def runtime() -> RuntimeOptions:
    """Per call: no SDK retries (the engine retries, bounded by the step's deadline)."""
    return RuntimeOptions(autoretry=False, max_attempts=0)


class _Body(Protocol):
    code: str | None
    message: str | None


class _Response(Protocol):
    @property
    def body(self) -> Any: ...


R = TypeVar("R", bound=_Response)


async def call(request: Awaitable[R], where: str, address: str) -> R:
    """Await an SDK call; a refusal or a network failure becomes our error at this edge.

    Aliyun answers business refusals (isv.*) with HTTP 200 and a `Code` other than OK, and
    refusals of the request itself (signature, throttling) with HTTP 4xx/5xx, which the SDK
    raises: both are classified the same way."""
    label = f"{where} to {mask_phone(address)}" if address else where
    try:
        response = await request
    except ResponseException as e:
        data = e.data if isinstance(e.data, dict) else {}
        status = int(data.get("statusCode") or getattr(e, "status_code", 0) or 0)
        code = str(e.code or data.get("Code") or f"HTTP{status}")
        if status >= 500 and code not in ("SignatureDoesNotMatch",):
            raise TransientChannelError(f"{label}: Aliyun failed (HTTP {status}, {code}); "
                                        "will retry", provider_code=code) from e
        raise classify(code, str(data.get("Message") or ""), label, PROVIDER) from e
    except TeaException as e:  # the SDK's wrapper of a network failure
        inner = getattr(e, "inner_exception", None)
        raise TransientChannelError(
            f"{label}: network error ({type(inner or e).__name__})",
            provider_code="network") from e
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise TransientChannelError(f"{label}: network error ({type(e).__name__})",
                                    provider_code="network") from e
    body = response.body
    code = str(getattr(body, "code", "") or "")
    if code != "OK":
        raise classify(code or "NoCode", str(getattr(body, "message", "") or ""), label,
                       PROVIDER)
    return response


def params_json(values: Mapping[str, str]) -> str:
    """TemplateParam / TtsParam: the variables as a JSON object (UTF-8, not escaped)."""
    return msgspec.json.encode(dict(values)).decode()
