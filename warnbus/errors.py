"""One error tree for warnbus. Every error carries a message a user can act on."""

from __future__ import annotations

from typing import ClassVar


class WarnbusError(Exception):
    """Base of every error warnbus raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(WarnbusError):
    """The configuration file or environment is invalid (names the key)."""

    code = "config"


class IngestError(WarnbusError):
    """An alert could not be accepted.

    `code` is one of: malformed (400), invalid (422), too_large (413), unsupported_type (415),
    unknown_reference (422), outside_registry (422: no area of the alert holds a grid of the
    registry), forbidden (403). `field` names the offending CAP field, as a path
    like `info[0].area[1].polygon[0]`, when there is one.
    """

    HTTP_STATUS: ClassVar[dict[str, int]] = {
        "malformed": 400,
        "invalid": 422,
        "unknown_reference": 422,
        "outside_registry": 422,
        "too_large": 413,
        "unsupported_type": 415,
        "forbidden": 403,
    }

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        text = f"{field}: {message}" if field else message
        super().__init__(text)
        self.code = code
        self.field = field
        self.reason = message

    @property
    def http_status(self) -> int:
        return self.HTTP_STATUS.get(self.code, 400)


class RegistryError(WarnbusError):
    """The grid registry is invalid; `problems` lists every problem found, one per line."""

    code = "registry"

    def __init__(self, problems: list[str]) -> None:
        head = f"{len(problems)} problem(s) in the registry"
        super().__init__(head + ":\n  " + "\n  ".join(problems[:50]))
        self.problems = problems


class RegistryImportError(WarnbusError):
    """A registry workbook or boundary file cannot be read at all (not a workbook, too large,
    a parser that gave up); its message is in Chinese, fit for the console and the CLI."""

    code = "registry_import"


class RegistryConflictError(WarnbusError):
    """A registry change was prepared on a version that is no longer current (someone else
    applied a change in between): prepare it again on the current one."""

    code = "registry_conflict"


class NotFoundError(WarnbusError):
    code = "not_found"


class CampaignStateError(WarnbusError):
    """A campaign's stored state does not read (e.g. a started campaign without its level):
    nothing is guessed in its place."""

    code = "campaign_state"


class DutyConflict(WarnbusError):
    """A duty change was made on a shift that changed meanwhile (its holder is no longer who
    the person making it saw): nothing is written; the message says so in Chinese. `day` and
    `holder`: the shift and who holds it now, when known."""

    code = "duty_conflict"

    def __init__(self, message: str, *, day: str = "", holder: str | None = None) -> None:
        super().__init__(message)
        self.day = day
        self.holder = holder


class JournalError(WarnbusError):
    """A confirmation could be written neither to Redis nor to the local journal (full, or
    the disk failed): nothing was accepted, and the caller must say so (a non-2xx)."""

    code = "unavailable"


class AuthError(WarnbusError):
    """No or bad credentials (401) or outside the credential's scope (403)."""

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.code = "forbidden" if forbidden else "unauthorized"
        self.forbidden = forbidden


class RateLimitedError(WarnbusError):
    """A public route's budget is spent (429); `retry_after` in whole seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChannelError(WarnbusError):
    """A channel could not hand a message to its provider."""

    code = "channel"

    def __init__(self, message: str, *, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.provider_code = provider_code


class TransientChannelError(ChannelError):
    """Try again later (after `retry_after` seconds when the provider said so)."""

    code = "channel_transient"

    def __init__(
        self, message: str, *, retry_after: float | None = None, provider_code: str | None = None
    ) -> None:
        super().__init__(message, provider_code=provider_code)
        self.retry_after = retry_after


class PermanentChannelError(ChannelError):
    """Do not retry this address on this channel; the policy may switch channel."""

    code = "channel_permanent"


class LimitedChannelError(TransientChannelError):
    """The provider refused this number for now under its own per-number limit.

    Neither the person's failure nor an outage: e.g. Tencent voice's one call per 30 s, Aliyun's
    isv.BUSINESS_LIMIT_CONTROL. `retry_after` is when the window that refused it ends, when
    known. It is a TransientChannelError so that a dispatcher that does not know it retries
    after that window (never drops the delivery); one that does takes another path instead.
    """

    code = "channel_limited"
