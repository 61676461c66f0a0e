"""The deployment files: compose.yaml, Dockerfile and the server configs under deploy/.

compose.yaml is read by a small parser for the YAML subset it uses (block mappings and
sequences, flow lists in JSON form, quoted scalars, anchors and `<<` merges), so the test
needs no YAML package; when PyYAML is installed, its reading must agree.
"""

from __future__ import annotations

import http.server
import importlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from redis import Redis

from tests.waits import until_sync
from warnbus.runtime.services import find_executable, free_port

ROOT = Path(__file__).resolve().parents[1]

# --- a parser for the YAML subset of compose.yaml -------------------------------------------


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str, anchors: dict[str, Any]) -> Any:
    if text.startswith("*"):
        return anchors[text[1:]]
    if text.startswith(("[", '"')):
        return json.loads(text)
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False, "null": None, "~": None}.get(text, text)


class _Yaml:
    def __init__(self, text: str) -> None:
        self.lines = [
            (len(s) - len(s.lstrip(" ")), s.strip())
            for s in map(_strip_comment, text.splitlines())
            if s.strip() and s.strip() != "---"
        ]
        self.i = 0
        self.anchors: dict[str, Any] = {}

    def block(self, indent: int) -> Any:
        if self.lines[self.i][1].startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while self.i < len(self.lines) and self.lines[self.i][0] == indent:
            text = self.lines[self.i][1]
            assert text.startswith("- "), f"mixed block at line {self.i}: {text}"
            rest = text[2:].strip()
            if re.match(r"[\w.-]+:( |$)", rest):  # "- key: value" starts a mapping item
                self.lines[self.i] = (indent + 2, rest)
                items.append(self.mapping(indent + 2))
            else:
                self.i += 1
                items.append(_scalar(rest, self.anchors))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.i < len(self.lines) and self.lines[self.i][0] == indent:
            key, sep, rest = self.lines[self.i][1].partition(":")
            assert sep, f"not a mapping entry: {self.lines[self.i][1]}"
            rest = rest.strip()
            self.i += 1
            anchor = None
            if rest.startswith("&"):
                anchor, _, rest = rest[1:].partition(" ")
            if rest:
                value = _scalar(rest, self.anchors)
            elif self.i < len(self.lines) and self.lines[self.i][0] > indent:
                value = self.block(self.lines[self.i][0])
            else:
                value = None
            if anchor:
                self.anchors[anchor] = value
            if key == "<<":
                out = {**value, **out}
            else:
                assert key not in out, f"duplicate key {key}"
                out[key.strip("\"'")] = value
        return out


def load_yaml(text: str) -> Any:
    parser = _Yaml(text)
    result = parser.block(0)
    assert parser.i == len(parser.lines), f"unparsed from: {parser.lines[parser.i]}"
    return result


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    data = load_yaml(text)
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        pass
    else:
        assert yaml.safe_load(text) == data
    assert isinstance(data, dict)
    return data


def _conf(path: Path) -> list[list[str]]:
    """Lines of a redis.conf/mosquitto.conf, comments dropped, split into words."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line.split() for line in lines if line and not line.startswith("#")]


# --- compose.yaml -------------------------------------------------------------------------


def test_compose_has_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "mosquitto", "warnbus-api", "warnbus-worker"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service or name.startswith("warnbus-"), name
    assert services["redis"]["image"].startswith("redis:")
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"


def test_compose_warnbus_roles_share_redis_and_broker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, role in [("warnbus-api", "api"), ("warnbus-worker", "worker")]:
        service = services[name]
        assert service["command"][0] == "serve"
        assert service["command"][service["command"].index("--role") + 1] == role
        env = service["environment"]
        assert "@redis:6379" in env["WARNBUS_REDIS_URL"]
        assert "@mosquitto:1883" in env["WARNBUS_MQTT_URL"]
        assert "./deploy/warnbus.toml:/etc/warnbus/warnbus.toml:ro" in service["volumes"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_redis_uses_aof(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    conf_mount = next(v for v in redis["volumes"] if v.startswith("./deploy/redis.conf:"))
    assert conf_mount.split(":")[1] in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"]), "AOF needs a volume"
    words = _conf(ROOT / "deploy" / "redis.conf")
    assert ["appendonly", "yes"] in words and ["appendfsync", "always"] in words
    assert "--requirepass" in redis["command"]


def test_compose_mosquitto_persists_and_needs_a_password(compose: dict[str, Any]) -> None:
    mosquitto = compose["services"]["mosquitto"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in mosquitto["volumes"]}
    words = _conf(ROOT / "deploy" / "mosquitto.conf")
    assert ["persistence", "true"] in words
    [location] = [w[1] for w in words if w[0] == "persistence_location"]
    assert any(location.rstrip("/") == target for target in mounts.values())
    [passwd] = [w[1] for w in words if w[0] == "password_file"]
    assert mounts["./deploy/mosquitto.passwd"] == passwd
    assert ["listener", "1883"] in words and ["allow_anonymous", "false"] in words


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).is_file(), volume


# --- Dockerfile ---------------------------------------------------------------------------


def _dockerfile_final_stage() -> list[str]:
    """Instructions of the last stage, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = [line.strip() for line in joined.splitlines() if line.strip()]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


def test_dockerfile_runs_as_non_root() -> None:
    stage = _dockerfile_final_stage()
    assert stage[0].startswith("FROM python:3.11-slim")
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "EXPOSE 8080" in stage
    assert 'ENTRYPOINT ["warnbus"]' in stage
    assert 'CMD ["serve", "--config", "/etc/warnbus/warnbus.toml"]' in stage


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("healthy", [True, False])
def test_dockerfile_healthcheck_asks_healthz(healthy: bool) -> None:
    [health] = [line for line in _dockerfile_final_stage() if line.startswith("HEALTHCHECK")]
    argv = json.loads(health[health.index(" CMD ") + 5 :])  # exec form, no shell in between
    assert argv[0] == "python"
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1] if healthy else free_port()
    try:
        env = {**os.environ, "WARNBUS_PORT": str(port)}
        result = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True)
        assert (result.returncode == 0) is healthy
    finally:
        server.shutdown()
        server.server_close()


# --- the server configs, run by the real servers -------------------------------------------


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    def listening() -> bool:
        assert proc.poll() is None, f"the server exited with code {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True

    until_sync(listening, f"a server listening on {port}", within=10, every=0.05)


def test_deploy_redis_conf_runs_with_aof(tmp_path: Path) -> None:
    binary = find_executable("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    text = (ROOT / "deploy" / "redis.conf").read_text(encoding="utf-8")
    conf = tmp_path / "redis.conf"
    conf.write_text(text.replace("dir /data", f'dir "{tmp_path}"'))
    # Command-line options come after the file's: loopback, a free port, a password.
    argv = [binary, str(conf), "--bind", "127.0.0.1", "--port", str(port), "--requirepass", "pw"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        _wait_listening(proc, port)
        client = Redis(port=port, password="pw")
        config = client.config_get("*")
        client.close()
        assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction" and config["save"] == ""
    finally:
        proc.terminate()
        proc.wait(5)


class _DeployBroker:
    """deploy/mosquitto.conf run by the real mosquitto, on free loopback ports."""

    def __init__(self, tmp_path: Path, acl: Path = ROOT / "deploy" / "mosquitto.acl") -> None:
        binary = find_executable("mosquitto")
        if binary is None:
            pytest.skip("mosquitto is not installed")
        self.port, self.health_port = free_port(), free_port()
        self.passwd = tmp_path / "passwd"
        shutil.copy(ROOT / "deploy" / "mosquitto.passwd", self.passwd)
        shutil.copy(ROOT / "deploy" / "healthcheck.acl", tmp_path / "health.acl")
        shutil.copy(acl, tmp_path / "mosquitto.acl")
        text = (ROOT / "deploy" / "mosquitto.conf").read_text(encoding="utf-8")
        for mount in ("mosquitto.passwd", "healthcheck.acl", "mosquitto.acl"):
            assert f"/mosquitto/config/{mount}" in text, mount
        text = (
            text.replace("listener 1883\n", f"listener {self.port} 127.0.0.1\n")
            .replace("listener 1880 127.0.0.1", f"listener {self.health_port} 127.0.0.1")
            .replace("/mosquitto/data/", f"{tmp_path}/")
            .replace("/mosquitto/config/mosquitto.passwd", str(self.passwd))
            .replace("/mosquitto/config/healthcheck.acl", str(tmp_path / "health.acl"))
            .replace("/mosquitto/config/mosquitto.acl", str(tmp_path / "mosquitto.acl"))
        )
        self.conf = tmp_path / "mosquitto.conf"
        # As root, mosquitto would switch to user `mosquitto`, who cannot read tmp_path.
        self.conf.write_text(text + f"user {pwd.getpwuid(os.geteuid()).pw_name}\n")
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _DeployBroker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL)
        _wait_listening(self.proc, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(5)


def test_deploy_mosquitto_conf_accepts_only_the_password(tmp_path: Path) -> None:
    with _DeployBroker(tmp_path) as broker:
        port = broker.port
        assert _connect(port, None, None) != 0
        assert _connect(port, "warnbus", "wrong") != 0
        assert _connect(port, "warnbus", "change-me") == 0
        assert _connect(broker.health_port, None, None) == 0  # the health check's listener


def _connect(port: int, user: str | None, password: str | None) -> int:
    """CONNACK reason code for these credentials (0 = accepted)."""
    done = threading.Event()
    result: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        client.username_pw_set(user, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(reason.value)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(5), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


# --- the loudspeakers' accounts and ACL ------------------------------------------------------


def _registry_devices() -> list[tuple[str, str]]:
    from warnbus.registry import default_registry_path, load_registry

    data = load_registry(default_registry_path()).data
    return sorted((d.id, d.region) for d in data.devices.values())


def test_deploy_acl_is_the_registry_s_and_is_mounted(compose: dict[str, Any]) -> None:
    from warnbus.runtime.brokerauth import acl_text

    text = (ROOT / "deploy" / "mosquitto.acl").read_text(encoding="utf-8")
    assert text == acl_text(_registry_devices()), "regenerate: warnbus broker acl --out ..."
    words = _conf(ROOT / "deploy" / "mosquitto.conf")
    [acl] = [w[1] for w in words if w[0] == "acl_file" and "healthcheck" not in w[1]]
    mosquitto = compose["services"]["mosquitto"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in mosquitto["volumes"]}
    assert mounts["./deploy/mosquitto.acl"] == acl
    # The ACL belongs to the 1883 listener (per_listener_settings): after it, before 1880.
    flat = [" ".join(w) for w in words]
    assert flat.index("listener 1883") < flat.index(f"acl_file {acl}") < flat.index(
        "listener 1880 127.0.0.1")
    # Every warnbus process signs loudspeaker commands with the deployment's key.
    for name in ("warnbus-api", "warnbus-worker"):
        env = compose["services"][name]["environment"]
        assert "WARNBUS_COMMAND_KEY" in env["WARNBUS_CHANNELS__LOUDSPEAKER__COMMAND_KEY"]


def test_deploy_acl_bounds_each_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    from tests.mqtt_probe import NOT_AUTHORIZED, Probe
    from warnbus.runtime.cli import main as cli_main

    devices = _registry_devices()
    (a, area_a), (b, area_b) = devices[0], next(d for d in devices if d[1] != devices[0][1])
    with _DeployBroker(tmp_path) as broker:
        # A county provisions two speakers: each gets a password, printed once.
        assert cli_main(["broker", "add-device", a, b, "--passwd", str(broker.passwd)]) == 0
        printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
        assert set(printed) == {a, b}
        assert printed[a] not in broker.passwd.read_text()  # hashed
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads the password file
        until_sync(lambda: _connect(broker.port, a, printed[a]) == 0,
                   "the broker to take the new account", within=5, every=0.1)
        assert _connect(broker.port, a, printed[b]) != 0
        with Probe(broker.port, "warnbus", "change-me") as engine, \
                Probe(broker.port, a, printed[a]) as dev_a, Probe(broker.port) as nobody:
            assert nobody.connect() != 0
            assert engine.connect() == 0 and dev_a.connect() == 0
            engine.subscribe("wb/v1/dev/+/ack")
            engine.subscribe("wb/v1/dev/+/status")
            assert dev_a.publish(f"wb/v1/dev/{b}/ack", b"forged") == NOT_AUTHORIZED
            assert dev_a.publish(f"wb/v1/dev/{b}/status", b"offline") == NOT_AUTHORIZED
            assert dev_a.publish(f"wb/v1/area/{area_b}/cmd", b"forged") == NOT_AUTHORIZED
            assert dev_a.publish(f"wb/v1/dev/{a}/ack", b"mine") == 0
            assert engine.received(f"wb/v1/dev/{a}/ack") == [b"mine"]
            assert engine.received(f"wb/v1/dev/{b}/ack", within=0.3) == []
            dev_a.subscribe("wb/v1/area/+/cmd")
            assert engine.publish(f"wb/v1/area/{area_b}/cmd", b"theirs") == 0
            assert engine.publish(f"wb/v1/area/{area_a}/cmd", b"ours") == 0
            assert dev_a.received(f"wb/v1/area/{area_a}/cmd") == [b"ours"]
            assert dev_a.received(f"wb/v1/area/{area_b}/cmd", within=0.3) == []


def test_broker_add_device_refuses_ids_that_break_the_acl(tmp_path: Path) -> None:
    from warnbus.errors import ConfigError
    from warnbus.runtime.brokerauth import acl_text, check_device

    for bad in ("a/b", "a+", "#", "warnbus", "", "x" * 200):
        with pytest.raises(ConfigError):
            check_device(bad)
    with pytest.raises(ConfigError, match="area"):
        acl_text([("spk-1", "4306/+")])
