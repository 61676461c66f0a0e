"""Shared fixtures: real redis-server and mosquitto on free ports, and paths to test data.

Session servers are shared by all tests; each test gets a flushed Redis database. A test that
kills or restarts a server takes its own (`fresh_redis_service`, `fresh_mosquitto_service`).
Retained MQTT messages outlive a test on the shared broker: use topics unique to the test.

Without the binaries the integration tests skip locally, but fail under CI=true: the test
script installs them, so their absence there is a bug.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog
from redis import Redis as SyncRedis
from redis.asyncio import Redis as AsyncRedis

from warnbus.runtime.brokerauth import BrokerAccounts
from warnbus.runtime.services import ManagedService, find_executable, start_mosquitto, start_redis

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _require(binary: str, package: str) -> None:
    if find_executable(binary) is not None:
        return
    message = f"{binary} is not installed: apt-get install {package} (scripts/bootstrap.sh does)"
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so this is a broken setup, not a skip", pytrace=False)
    pytest.skip(message)


def _redis(data_dir: Path) -> ManagedService:
    _require("redis-server", "redis-server")
    # fallback=False: the tests are about the real server, never a stand-in. The session's
    # server fsyncs every second, as before: the tests about durability start their own
    # (`redis_factory`, `fresh_redis_service`: the shipped default, fsync always).
    return start_redis(data_dir, fallback=False, appendfsync="everysec")


def _mosquitto(data_dir: Path) -> ManagedService:
    _require("mosquitto", "mosquitto")
    return start_mosquitto(data_dir, fallback=False)


@pytest.fixture(autouse=True)
def _plain_tracebacks() -> None:
    """Log tests' exceptions as plain text, not structlog's default rich tracebacks.

    An engine in the test process logs every failing call of its loops while a server is
    down (the fault and durability tests), and rich renders each traceback as boxed source
    with its locals: ~0.1 s of CPU apiece, seconds a second on a loaded machine, which held
    the tests' own event loop (a Redis restart that takes 0.1 s waited 70 s for its turn).
    Set again for each test: a test that reconfigures logging resets the defaults after it.
    """
    processors = structlog.get_config()["processors"]
    last = processors[-1] if processors else None
    if isinstance(last, structlog.dev.ConsoleRenderer) and not getattr(last, _PLAIN, False):
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback)
        setattr(renderer, _PLAIN, True)
        structlog.configure(processors=[*processors[:-1], renderer])


_PLAIN = "_tests_plain_tracebacks"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_cap_dir(repo_root: Path) -> Path:
    """The shared real-world CAP samples (`<repo>/../shared/data/cap`)."""
    path = repo_root.parent / "shared" / "data" / "cap"
    if not path.is_dir():
        pytest.skip(f"../shared/data/cap is absent: no shared CAP samples beside {repo_root}")
    return path


# --- redis --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedService]:
    with _redis(tmp_path_factory.mktemp("redis")) as service:
        yield service


@pytest.fixture
def redis_url(redis_service: ManagedService) -> str:
    """URL of the session Redis, flushed for this test (the server is ours alone)."""
    client = SyncRedis.from_url(redis_service.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_service.url


@pytest_asyncio.fixture(name="redis")
async def redis_client(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """An asyncio client (bytes in, bytes out) on a clean database."""
    client = AsyncRedis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., ManagedService]]:
    """Start Redis servers of this test's own: `redis_factory(appendfsync="always")`.

    Keyword arguments go to `start_redis`; every server is stopped after the test.
    """
    started: list[ManagedService] = []

    def start(**kwargs: Any) -> ManagedService:
        _require("redis-server", "redis-server")
        kwargs.setdefault("fallback", False)
        service = start_redis(tmp_path / f"redis-{len(started)}", **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def fresh_redis_service(redis_factory: Callable[..., ManagedService]) -> ManagedService:
    """A Redis of this test's own, free to kill and restart."""
    return redis_factory()


# --- mqtt ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedService]:
    with _mosquitto(tmp_path_factory.mktemp("mosquitto")) as service:
        yield service


@pytest.fixture
def mqtt_port(mosquitto_service: ManagedService) -> int:
    return mosquitto_service.port


@pytest.fixture
def mqtt_url(mosquitto_service: ManagedService) -> str:
    return mosquitto_service.url


@pytest.fixture
def fresh_mosquitto_service(tmp_path: Path) -> Iterator[ManagedService]:
    """A broker of this test's own: no retained messages from others, free to restart."""
    with _mosquitto(tmp_path / "mosquitto") as service:
        yield service


@pytest.fixture
def auth_mosquitto(tmp_path: Path) -> Iterator[Callable[..., ManagedService]]:
    """Start brokers as `serve` does: no anonymous clients, an engine account and one per
    device with the ACL. `auth_mosquitto([(device_id, area), ...])`; `.url` carries the
    engine's account, `.accounts.device_passwords` the devices'."""
    started: list[ManagedService] = []

    def start(devices: list[tuple[str, str]], prefix: str = "wb/v1") -> ManagedService:
        _require("mosquitto", "mosquitto")
        accounts = BrokerAccounts.generate(devices, prefix=prefix)
        service = start_mosquitto(tmp_path / f"auth-mqtt-{len(started)}", accounts=accounts,
                                  fallback=False)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topics private to this test on the shared broker: `unique_topic("a/b")`."""
    prefix = f"test/{os.getpid()}/{abs(hash(request.node.nodeid)):x}"
    return lambda suffix: f"{prefix}/{suffix.lstrip('/')}"
