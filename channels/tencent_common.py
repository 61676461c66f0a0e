"""What the Tencent Cloud SMS and voice channels share: config, the SDK's async clients, errors.

The SDK signs each request with TC3-HMAC-SHA256 (a canonical request of method, path, query,
the `content-type` and `host` headers and the body's SHA-256, under a key derived from the
secret key, the UTC date and the service); Tencent refuses a request whose X-TC-Timestamp
is more than 5 minutes off (AuthFailure.SignatureExpire), so the server clock must be kept
(NTP). `HttpProfile(endpoint=..., protocol="http")` points the clients at the simulator.

The SDK's default clients are synchronous (requests). Its official asyncio clients are used
instead (`tencentcloud-sdk-python-common[async]`, httpx): `sms_client_async.SmsClient`, and
for voice, which ships no async client of its own, the official async `CommonClient` with the
VMS models. No thread pool: a province-wide wave would need hundreds of threads to keep as
many calls in flight as one event loop does.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

import httpx
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from channels.cn_common import HookConfig
from channels.cn_outcomes import classify
from channels.cn_templates import TENCENT_VAR, TemplateConfig, TemplateRules
from warnbus.plugin import Secret, TransientChannelError, breaker_key_for, mask_phone

T = TypeVar("T")
PROVIDER = "Tencent"
_NETWORK = frozenset({"ServerNetworkError", "ClientNetworkError"})


class TencentConfig(HookConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Settings shared by the Tencent channels. `secret_key` is secret: never repr'd."""

    type: str
    secret_id: str
    secret_key: Secret
    sdk_app_id: str  # SmsSdkAppId / VoiceSdkAppid
    templates: dict[str, TemplateConfig]
    # Characters per template variable on this account: 6 for accounts opened since
    # 2024-01-25 unless Tencent raised it (the console shows the account's value).
    variable_max_chars: int = 6
    endpoint: str = ""  # host[:port]; empty: the product's public endpoint
    protocol: Literal["https", "http"] = "https"
    region: str = "ap-guangzhou"
    rate_per_s: float = 50.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.secret_id or not self.secret_key or not self.sdk_app_id:
            raise ValueError("secret_id, secret_key and sdk_app_id must not be empty")
        if "/" in self.endpoint or "://" in self.endpoint:
            raise ValueError("endpoint is a host[:port], without scheme or path")
        if not 1 <= self.variable_max_chars <= 500 or self.rate_per_s <= 0:
            raise ValueError("variable_max_chars 1..500; rate_per_s must be positive")


def breaker_key(c: TencentConfig, default_endpoint: str) -> str:
    """The configured breaker key, else the SecretId at the product's endpoint."""
    return breaker_key_for(c, "tencent", c.secret_id, c.endpoint or default_endpoint)


def rules(config: TencentConfig) -> TemplateRules:
    """Tencent templates: `{1}`..`{n}` filled in order, the account's per-variable limit."""
    return TemplateRules(PROVIDER, TENCENT_VAR, positional=True,
                         var_max=config.variable_max_chars)


def credential(c: TencentConfig) -> Credential:
    return Credential(c.secret_id, c.secret_key.reveal())


def profile(c: TencentConfig) -> ClientProfile:
    http = HttpProfile(endpoint=c.endpoint or None, protocol=c.protocol,
                       reqTimeout=max(1, round(c.timeout_s)))
    return ClientProfile(httpProfile=http)


async def call(request: Awaitable[T], where: str, address: str) -> T:
    """Await an SDK call; a refusal or a network failure becomes our error at this edge."""
    label = f"{where} to {mask_phone(address)}" if address else where
    try:
        return await request
    except TencentCloudSDKException as e:
        code = str(e.get_code() or "")
        if code in _NETWORK:
            raise TransientChannelError(f"{label}: network error ({code})",
                                        provider_code="network") from e
        raise classify(code, str(e.get_message() or ""), label, PROVIDER) from e
    except (httpx.TransportError, TimeoutError, OSError) as e:
        raise TransientChannelError(f"{label}: network error ({type(e).__name__})",
                                    provider_code="network") from e


def answer_ok() -> dict[str, Any]:
    """What Tencent expects back from a callback."""
    return {"result": 0, "errmsg": "OK"}


__all__ = ["PROVIDER", "TencentConfig", "answer_ok", "breaker_key", "call", "credential", "profile",
           "rules"]
