"""What the mainland providers' codes mean for a 叫应: outcomes of calls, classes of refusals.

A call ends in one of a few outcomes that the escalation can act on (`CallOutcome`); each is
reported to the engine as a `ProviderStatus` with the provider's own code in the detail. A
refused send is one of three errors: transient (try again), permanent (this number or this
account will not work: the policy switches channel), limited (the provider's per-number
limit: neither the person's failure nor an outage).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from warnbus.plugin import (
    ChannelError,
    LimitedChannelError,
    PermanentChannelError,
    ProviderStatus,
    TransientChannelError,
    mask_phones_in,
)


class CallOutcome(StrEnum):
    """How a call ended, as far as the 叫应 is concerned."""

    CONFIRMED = "confirmed"  # the key was pressed (the confirmation itself goes to sink.confirm)
    HEARD = "heard"  # heard in full without the key: answered, confirms nothing
    HUNG_UP_EARLY = "hung-up-early"  # answered, hung up before the end, no key
    MACHINE = "machine"  # voicemail, an AI assistant or call forwarding answered: not reached
    LIMITED = "limited"  # refused by the provider's time-of-day or frequency limit
    PERMANENT = "permanent"  # 空号 / 停机 / invalid number: calling again will not help
    RETRY = "retry"  # 关机 / 占线 / 无人接听 / out of reach: call again


#: How each outcome is reported to the engine. A machine is a missed call (no-answer); a
#: limited call is its own status, never the person's failure.
OUTCOME_STATUS: Mapping[CallOutcome, ProviderStatus] = {
    CallOutcome.CONFIRMED: ProviderStatus.DELIVERED,
    CallOutcome.HEARD: ProviderStatus.ANSWERED,
    CallOutcome.HUNG_UP_EARLY: ProviderStatus.ANSWERED,
    CallOutcome.MACHINE: ProviderStatus.NO_ANSWER,
    CallOutcome.LIMITED: ProviderStatus.LIMITED,
    CallOutcome.PERMANENT: ProviderStatus.FAILED,
    CallOutcome.RETRY: ProviderStatus.NO_ANSWER,
}

# ------------------------------------------------------------------ Aliyun voice (呼叫状态码)

ALIYUN_CALL_CODES: Mapping[str, tuple[CallOutcome, str]] = {
    "200000": (CallOutcome.HEARD, "用户听完语音"),
    "200001": (CallOutcome.HUNG_UP_EARLY, "用户提前挂机未完整收听"),
    "200002": (CallOutcome.RETRY, "用户占线"),
    "200003": (CallOutcome.RETRY, "用户未接听"),
    "200004": (CallOutcome.PERMANENT, "用户号码不合法"),
    "200005": (CallOutcome.RETRY, "被叫用户无法接通"),
    "200006": (CallOutcome.RETRY, "语音播放失败"),
    "200007": (CallOutcome.RETRY, "用户不在服务区"),
    "200008": (CallOutcome.HEARD, "获取按键超时"),
    "200010": (CallOutcome.RETRY, "关机"),
    "200011": (CallOutcome.PERMANENT, "停机"),
    "200117": (CallOutcome.PERMANENT, "来电显示号码不合法"),
    "200118": (CallOutcome.LIMITED, "供应商时间段限呼"),
    "200119": (CallOutcome.LIMITED, "供应商超频限呼"),
    "200121": (CallOutcome.RETRY, "呼叫超并发"),
}
#: 智能状态码 that mean nobody was reached, whatever the call status says.
ALIYUN_MACHINE_CODES: Mapping[str, str] = {
    "INTELLIGENT_ANSWER": "智能助理/语音信箱接听",
    "CALL_FORWARDING": "呼叫转移",
    "VOICE_MAILBOX": "语音信箱",
}
ALIYUN_KEY_EVENT = "300000"  # VoiceCallReport: a key was pressed (dtmf holds it)


def aliyun_call_outcome(status_code: str, smart_code: str = "") -> tuple[CallOutcome, str]:
    """The outcome of an Aliyun call from its status code and 智能状态码, with a detail."""
    if smart_code in ALIYUN_MACHINE_CODES:
        return CallOutcome.MACHINE, f"{ALIYUN_MACHINE_CODES[smart_code]} ({smart_code})"
    outcome, text = ALIYUN_CALL_CODES.get(status_code, (CallOutcome.RETRY, "未知状态"))
    return outcome, f"{text} ({status_code})"


# ------------------------------------------------------------------ Tencent voice

_PERMANENT_WORDS = ("空号", "停机", "号码不存在", "号码错误", "销号")
_MACHINE_WORDS = ("语音信箱", "呼叫转移", "智能助理", "秘书")


def tencent_failure_outcome(code: int | str, reason: str) -> tuple[CallOutcome, str]:
    """A voice_failure_callback as an outcome: 空号/停机 are permanent, the rest retried."""
    detail = f"{reason or '呼叫失败'} ({code})"
    if any(w in reason for w in _PERMANENT_WORDS):
        return CallOutcome.PERMANENT, detail
    if any(w in reason for w in _MACHINE_WORDS):
        return CallOutcome.MACHINE, detail
    return CallOutcome.RETRY, detail


# ------------------------------------------------------------------ refused sends

DAY_S = 86_400.0
#: Per-number limits: code -> seconds until the refusing window has passed (at most).
LIMITED: Mapping[str, float] = {
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,  # Aliyun: per-number minute/hour/day flow control
    "isv.DAY_LIMIT_CONTROL": DAY_S,
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
    "LimitExceeded.PhoneNumberDailyLimit": DAY_S,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": DAY_S,
    "LimitExceeded.DeliveryFrequencyLimit": 30.0,  # Tencent voice: per-number frequency
}
#: Worth another try soon: throttling of the API itself, the provider's own faults.
TRANSIENT: frozenset[str] = frozenset({
    "Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError",
    "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "RequestLimitExceeded",
    "InternalError.Timeout", "InternalError.SendAndRecvFail", "InternalError.OtherError",
    "InternalError.AccessUpstreamTimeout", "InternalError.UpstreamError",
    "InternalError.RequestTimeException", "FailedOperation.AccessUpstreamTimeout",
})
#: Permanent codes worth a sentence a person can act on (any other refusal is permanent too).
PERMANENT: Mapping[str, str] = {
    "SignatureDoesNotMatch": "the signature was refused: check access_key_secret",
    "InvalidAccessKeyId.NotFound": "unknown access_key_id",
    "AuthFailure.SignatureFailure": "the signature was refused: check secret_key",
    "AuthFailure.SecretIdNotFound": "unknown secret_id",
    "AuthFailure.SignatureExpire": "the request's time is more than 5 minutes off: check the "
                                   "server clock (NTP)",
    "InvalidTimeStamp.Expired": "the request's time is too far off: check the server clock",
    "isv.MOBILE_NUMBER_ILLEGAL": "the number is not a valid mobile number",
    "isv.AMOUNT_NOT_ENOUGH": "the account's balance is exhausted",
    "isv.OUT_OF_SERVICE": "the account is suspended (arrears)",
    "isv.SMS_TEMPLATE_ILLEGAL": "the template code is unknown or not approved",
    "isv.SMS_SIGNATURE_ILLEGAL": "the signature (sign_name) is unknown or not approved",
    "isv.TEMPLATE_MISSING_PARAMETERS": "the template's variables were not all given",
    "isv.PARAM_LENGTH_LIMIT": "a template variable is too long",
    "isv.PARAM_NOT_SUPPORT_URL": "a template variable holds a URL",
    "isv.BLACK_KEY_CONTROL_LIMIT": "the number is on the provider's block list",
    "FailedOperation.TemplateIncorrectOrUnapproved": "the template is unknown, not approved, "
                                                     "or its variables do not match it",
    "FailedOperation.SignatureIncorrectOrUnapproved": "the signature is unknown or not approved",
    "FailedOperation.InsufficientBalanceInSmsPackage": "the SMS package is used up",
    "FailedOperation.InsufficientBalanceInVoicePackage": "the voice package is used up",
    "FailedOperation.PhoneNumberInBlacklist": "the number is on the provider's block list",
    "InvalidParameterValue.IncorrectPhoneNumber": "the number is not a valid phone number",
    "InvalidParameterValue.CalledNumberVerifyFail": "the number is not a valid phone number",
    "InvalidParameterValue.TemplateParameterLengthLimit": "a template variable is too long",
    "InvalidParameterValue.ContentLengthLimit": "the content is too long",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": "a template variable holds "
                                                                 "a URL",
    "UnauthorizedOperation.ServiceSuspendDueToArrears": "the account is suspended (arrears)",
}


def classify(code: str, message: str, where: str, provider: str) -> ChannelError:
    """A provider's refusal of a send as our error (transient / permanent / limited)."""
    vendor = f"{provider} {code}"
    message = mask_phones_in(message)[:200]  # messages end up in logs and the record
    if code in LIMITED:
        return LimitedChannelError(
            f"{where}: refused by the provider's per-number limit ({vendor}); another path "
            "or a later try", retry_after=LIMITED[code], provider_code=code)
    if code in TRANSIENT or code.startswith(("Throttling", "InternalError")):
        return TransientChannelError(f"{where}: {provider} is busy or failing ({vendor}); "
                                     "will retry", provider_code=code)
    reason = PERMANENT.get(code) or (f"refused: {message}" if message else "refused")
    return PermanentChannelError(f"{where}: {reason} ({vendor})", provider_code=code)
