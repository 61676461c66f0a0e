"""Settings: a TOML file plus `WARNBUS_*` environment variables, validated once, strictly.

Unknown keys are errors (naming the key). Secrets are `Secret` values: they print as `***`
and are never logged. With no file at all, every default below gives the embedded default of
DESIGN section 10 (local Redis and broker started by warnbus, the bundled sample county).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from warnbus.errors import ConfigError
from warnbus.plugin import Secret as Secret  # the one Secret class, shared with the channels
from warnbus.plugin import secret_hook


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # base of ack links; default http://host:port
    max_body_bytes: int = 4 * 1024 * 1024
    # Most <area>s in one alert, and polygon/circle/geocode entries in them (413 beyond);
    # they also bound what the feed pollers accept. Defaults: warnbus.ingest.DEFAULT_MAX_*.
    max_areas: Annotated[int, msgspec.Meta(ge=1)] = 1000
    max_area_entries: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    # Several processes serve one host:port (SO_REUSEPORT; the kernel spreads connections
    # over them): run more `warnbus serve --role api` processes when one core is not enough.
    reuse_port: bool = False


class EngineSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    batch: int = 256  # deliveries read per lane read
    concurrency: int = 64  # in-flight sends per channel per process
    # Lane loops per channel per process: while one loop's chunk is with the provider, another
    # claims or records its own in Redis (one chunk's sends in flight at a time). Two raise
    # the engine-only province rate by about 7 %, but made the fault tests' campaigns
    # (tests/faults, a slow test provider) finish later; see docs/benchmarks.md.
    lane_readers: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    lease_s: float = 30.0  # a claimed delivery not recorded by then may be resent
    # Retries are bounded by time (warnbus/flow/retry.py): a person's message of the 叫应
    # chain until its step's deadline, an area command while its alert is valid, anything
    # else for retry_window_s; then dead-letter + the fallback channel. max_attempts, when
    # not 0, also caps the provider calls of one delivery.
    max_attempts: Annotated[int, msgspec.Meta(ge=0)] = 0
    retry_window_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    retry_base_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0  # backoff; last try this early
    retry_max_s: float = 120.0
    tick_s: float = 0.25  # timer promotion interval (real seconds)
    # How often dead workers' entries are reclaimed (real seconds): those of a process whose
    # heartbeat stopped at once, any other after the lease.
    sweep_s: float = 2.0
    # How often the sweeper checks that every open grid will move on (real seconds; see
    # warnbus/flow/repair.py): one read of each active campaign's grids.
    grid_check_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    clock_factor: float = 1.0  # >1 compresses time (demo only)
    redis_connections: int = 64  # per process; commands wait for a free one
    # Each process beats every `heartbeat_s` (real seconds); one silent for `heartbeat_ttl_s`
    # is dead, and the sweepers take over its timers and lane entries without waiting for
    # the lease.
    heartbeat_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    heartbeat_ttl_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # A process whose clock is further than this from Redis's (seconds) refuses the timer
    # role (it keeps api and worker, on Redis's time); deadlines are kept on Redis's clock.
    max_clock_skew_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # A confirmation or provider report that Redis has not taken within this (real
    # seconds: WeCom resends after 5) is written to the local journal, fsynced, and
    # answered; the journal is replayed into Redis when it returns.
    durable_wait_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    journal_dir: str = ""  # empty: <data_dir>/journal; one file per process
    journal_max_mb: Annotated[float, msgspec.Meta(gt=0)] = 64.0  # per process; then 503


#: In `senders`: any sender. Only the local full-scope token (`WARNBUS_API_TOKEN`, or the one
#: generated at start-up) has it; `[[tokens]]` and `[[feeds]]` must name their senders.
ANY_SENDER = "*"


class TokenSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A feed or officer token. Store `sha256` (hex of the token), not the token itself.

    `senders` are the CAP `sender` values the token may publish under: an alert of any other
    sender is refused (403), and the token never sees, continues, cancels or pre-empts another
    sender's thread. A token that may publish (role `feed` or `admin`) must list them (see
    `check_credentials`). `"*"` (any sender but the console's) is meant only for the local
    full-scope token that `warnbus.runtime.app` adds from `WARNBUS_API_TOKEN` or generates; a
    configured token may not use it.
    """

    name: str
    sha256: str
    roles: tuple[str, ...] = ("feed",)  # feed (publish alerts), officer (acks), admin
    senders: tuple[str, ...] = ()  # CAP senders the token may publish under
    regions: tuple[str, ...] = ()  # code prefixes the token may publish to; empty = all
    categories: tuple[str, ...] = ()  # CAP categories allowed; empty = all
    revoked: bool = False


_HOST = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$"


class FeedSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A feed warnbus polls (`[[feeds]]`): an Atom/RSS index of CAP files, or one CAP URL."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    kind: Literal["atom", "rss", "cap"] = "atom"
    interval_s: Annotated[float, msgspec.Meta(ge=1)] = 60.0
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    max_backoff_s: Annotated[float, msgspec.Meta(ge=1)] = 900.0  # cap of the error backoff
    max_bytes: Annotated[int, msgspec.Meta(gt=0)] = 8 * 1024 * 1024  # per index or CAP file
    # The CAP senders this feed speaks for (required, like a feed token's): an entry of any
    # other sender is rejected, counted and logged.
    senders: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # the same scope as a feed token: code prefixes, empty = all
    categories: tuple[str, ...] = ()  # CAP categories allowed; empty = all
    enabled: bool = True
    # Hosts entry links and redirects may lead to ("*.example.cn" for any name under it);
    # empty: the feed URL's host only. Loopback, private and link-local addresses are
    # refused (checked on the resolved address) unless allow_private is true.
    allowed_hosts: tuple[Annotated[str, msgspec.Meta(pattern=_HOST)], ...] = ()
    allow_private: bool = False
    # XML-DSig policy for this source: require a valid signature, verify one when present,
    # or ignore; `trust` names PEM files the signing certificate must chain to (empty: the
    # signature must verify against the certificate it carries).
    signature: Literal["require", "verify", "ignore"] = "ignore"
    trust: tuple[str, ...] = ()
    # `require` with no trust store would accept a signature anyone can make with a
    # certificate of their own: refused unless the feed says so here (logged at start).
    trust_carried_certificate: bool = False

    def __post_init__(self) -> None:
        host = (urlsplit(self.url).hostname or "").lower()
        if self.allowed_hosts and not any(
                host == h.lower() or (h.startswith("*.") and host.endswith(h[1:].lower()))
                for h in self.allowed_hosts):
            raise ValueError(f"feed {self.name!r}: allowed_hosts does not hold the feed URL's "
                             f"host {host!r}")
        if self.signature == "require" and not self.trust and not self.trust_carried_certificate:
            raise ValueError(
                f"feed {self.name!r}: signature = \"require\" needs a trust store (trust = "
                "[\"ca.pem\"]); without one any self-made certificate passes. To accept that "
                "(integrity only, not who signed), set trust_carried_certificate = true")


class WindowSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """At most `count` sends to one number within any `seconds`."""

    count: Annotated[int, msgspec.Meta(ge=1)]
    seconds: Annotated[float, msgspec.Meta(gt=0)]


#: The providers' documented per-number defaults a `[limits.*]` entry may start from.
Preset = Literal["tencent-voice", "aliyun-voice", "tencent-sms", "aliyun-sms", "none", ""]


class LimitSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[limits.<account>]`: one provider account's limits per called number.

    Every Aliyun or Tencent SMS or voice channel has its provider's documented defaults
    without an entry (`warnbus.state.numberlimits.PRESETS`) (one record per account: its type
    and breaker key). An entry names the channels that send through the account (they share
    one record per number: two caller numbers of one account count together) and may start
    from a `preset`, then set its own windows, `per_day` and `per_night`; `preset = "none"`
    with nothing else: no limits. Nights are
    Beijing time, `night = [22, 8]` (22:00-08:00)."""

    channels: tuple[str, ...] = ()
    preset: Preset = ""
    windows: tuple[WindowSettings, ...] | None = None
    per_day: Annotated[int, msgspec.Meta(ge=0)] | None = None
    per_night: Annotated[int, msgspec.Meta(ge=0)] | None = None
    night: tuple[Annotated[int, msgspec.Meta(ge=0, le=23)], Annotated[int, msgspec.Meta(
        ge=0, le=23)]] = (22, 8)
    # Seconds added to each window (the provider counts a send when it arrives, a little
    # after the engine took it); more when the engine's clock is compressed (the demo).
    margin_s: Annotated[float, msgspec.Meta(ge=0)] = 2.0

    def __post_init__(self) -> None:
        if self.night[0] == self.night[1]:
            raise ValueError("night: two different hours (start, end), e.g. [22, 8]")


LevelName = Literal["red", "orange", "yellow", "blue"]


class ConsoleConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`[console]`: defaults of the officers' console, used until an admin changes them
    there (the console keeps its own settings in Redis)."""

    approval_levels: tuple[LevelName, ...] = ("red", "orange")  # need a second person
    # The CAP sender the console publishes under; no token or feed may list it. Default:
    # <county code>00000000@console.warnbus (the county of the registry).
    sender: Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[^\s,<&*]*$")] = ""
    # A WeCom group robot's webhook URL: each new message and each draft waiting for approval
    # is posted there (web/console/notify.py); its key is a secret. Empty: none.
    notify_webhook: Secret = Secret("")
    notify_mention: tuple[str, ...] = ()  # WeCom user ids @-mentioned (the approvers on duty)


def _level_list(var: str, value: str) -> list[str]:
    """`red,orange`, `red orange`, `["red", "orange"]`; `none` for no level at all."""
    text = value.strip().strip("[]")
    items = [x.strip().strip("'\"").lower() for x in text.replace(",", " ").split()]
    if items == ["none"]:
        return []
    if not items:
        raise ConfigError(f"{var}: list the levels (red, orange, yellow, blue), or 'none'")
    return items


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    data_dir: str = ""
    redis_url: str = ""  # empty: start an embedded redis-server
    # The embedded redis-server's AOF fsync: "always" (every write is on disk before its
    # reply: nothing answered 2xx or 202 is lost to a power cut) or "everysec" (faster; a
    # power cut loses up to the last second, docs/reliability.md). Production Redis: its
    # own redis.conf (deploy/redis.conf).
    redis_appendfsync: Literal["always", "everysec"] = "always"
    mqtt_url: str = ""  # empty: start an embedded broker
    registry: str = ""  # empty: the bundled sample county
    policy: str = ""
    hazards: str = ""
    templates: str = ""
    sites: str = ""  # which sites each hazard calls, and their policy (rules/sites.toml)
    ack_secret: Secret = Secret("")
    ack_ttl_s: float = 24 * 3600.0
    api_token: Secret = Secret("")
    log_level: str = "info"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    engine: EngineSettings = msgspec.field(default_factory=EngineSettings)
    tokens: tuple[TokenSettings, ...] = ()
    channels: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    feeds: tuple[FeedSettings, ...] = ()
    console: ConsoleConfig = msgspec.field(default_factory=ConsoleConfig)
    # Per-number limits per provider account (see LimitSettings), by account name.
    limits: dict[str, LimitSettings] = msgspec.field(default_factory=dict)
    # A channel name the policy uses -> the channels that carry it: a first wave is spread
    # over them by their rates, and each is the others' next path when a per-number limit
    # would refuse a call (`warnbus.flow.routes`). E.g. voice = ["voice-aliyun", "voice-tc"].
    routes: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        """Settings as a log line may show them: channel tables hold provider secrets as
        plain strings until each channel loads its own (typed) configuration, and the Redis and
        broker URLs may carry passwords, so those show only what is not secret."""
        shown: list[str] = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "channels":
                value = {ch: {"type": raw.get("type", "?"), "...": f"{len(raw)} keys"}
                         for ch, raw in value.items()}
            elif name in ("redis_url", "mqtt_url"):
                value = _without_password(value)
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_credentials(settings: Settings, console_sender: str) -> None:
    """Refuse, at start-up, a token or feed that could speak for senders it should not.

    A token that may publish (role `feed` or `admin`, not revoked) and every feed must list
    their CAP senders; none may list `"*"` (the local full-scope token's alone), a blank or
    malformed sender, or the console's own sender (`console_sender`).
    """
    named: list[tuple[str, tuple[str, ...], bool]] = [
        (f"tokens[{i}] (name {t.name!r})", t.senders,
         not t.revoked and bool({"feed", "admin"} & set(t.roles)))
        for i, t in enumerate(settings.tokens)]
    named += [(f"feeds[{i}] (name {f.name!r})", f.senders, True)
              for i, f in enumerate(settings.feeds)]
    for where, senders, publishes in named:
        if publishes and not senders:
            raise ConfigError(
                f"{where}: list the CAP senders it may publish under, e.g. senders = "
                '["430623@qx.example.cn"]; an alert of any other sender is refused')
        for sender in senders:
            if sender == ANY_SENDER:
                raise ConfigError(
                    f'{where}: senders = ["*"] (any sender) is only for the local full-scope '
                    "token (WARNBUS_API_TOKEN); list the CAP senders this one speaks for")
            if not sender or any(c.isspace() or c in ",<&" for c in sender):
                raise ConfigError(f"{where}: {sender!r} is not a CAP sender (no spaces, commas, "
                                  "'<' or '&')")
            if sender == console_sender:
                raise ConfigError(
                    f"{where}: {sender!r} is the console's own sender ([console] sender); "
                    "only the console publishes under it")


_ENV_KEYS = {
    "WARNBUS_DATA_DIR": "data_dir",
    "WARNBUS_REDIS_URL": "redis_url",
    "WARNBUS_REDIS_APPENDFSYNC": "redis_appendfsync",
    "WARNBUS_MQTT_URL": "mqtt_url",
    "WARNBUS_REGISTRY": "registry",
    "WARNBUS_ACK_SECRET": "ack_secret",
    "WARNBUS_API_TOKEN": "api_token",
    "WARNBUS_LOG_LEVEL": "log_level",
}


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load settings from `path` (TOML; optional) and the environment; raise ConfigError."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"configuration file not found: {p}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration file {p} is not valid TOML: {e}") from e
    for var, key in _ENV_KEYS.items():
        if env.get(var):
            raw[key] = env[var]
    for var, value in env.items():
        # WARNBUS_CHANNELS__SMS__AUTH_TOKEN=... sets channels.sms.auth_token (secrets by env).
        if var.startswith("WARNBUS_CHANNELS__") and value:
            parts = var[len("WARNBUS_CHANNELS__"):].lower().split("__")
            if len(parts) != 2 or not all(parts):
                raise ConfigError(f"{var}: expected WARNBUS_CHANNELS__<CHANNEL>__<FIELD>")
            raw.setdefault("channels", {}).setdefault(parts[0], {})[parts[1]] = value
    if env.get("WARNBUS_CONSOLE__APPROVAL_LEVELS"):
        var = "WARNBUS_CONSOLE__APPROVAL_LEVELS"
        raw.setdefault("console", {})["approval_levels"] = _level_list(var, env[var])
    if env.get("WARNBUS_PORT"):
        try:
            port = int(env["WARNBUS_PORT"])
        except ValueError as e:
            raise ConfigError("WARNBUS_PORT must be a number") from e
        raw.setdefault("server", {})["port"] = port
    try:
        return msgspec.convert(raw, Settings, dec_hook=secret_hook)
    except msgspec.ValidationError as e:
        raise ConfigError(f"configuration: {e}") from e
