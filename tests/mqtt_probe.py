"""A plain paho MQTT 5 client for broker tests: what the broker answers to each packet.

Tells the CONNACK, PUBACK and SUBACK reason codes (0 = accepted; 0x87 = not authorized,
0x86 = bad user name or password) and collects the messages it receives.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

NOT_AUTHORIZED = 0x87


class Probe:
    def __init__(self, port: int, user: str | None = None, password: str | None = None,
                 client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.port = port
        self.connack: int | None = None
        self.messages: list[tuple[str, bytes, Any]] = []
        self._acks: dict[int, int] = {}
        self._event = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason.value
        self._event.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self._acks[mid] = reason.value
        self._event.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self._acks[mid] = reasons[0].value
        self._event.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, msg.payload, msg.properties))

    def _wait(self, check: Any, what: str, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, f"no {what} from the broker"
            self._event.wait(0.05)
            self._event.clear()

    def connect(self) -> int:
        """The CONNACK reason code (0: accepted)."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str, payload: bytes, *, user_properties: list[tuple[str, str]]
                | None = None, retain: bool = False) -> int:
        """The PUBACK reason code of a QoS 1 publish (0x87: the ACL refused it)."""
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = user_properties
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        self._wait(lambda: info.mid in self._acks, "PUBACK")
        return self._acks[info.mid]

    def subscribe(self, topic: str) -> int:
        """The SUBACK reason code (1: granted QoS 1; 0x87: not authorized)."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        self._wait(lambda: mid in self._acks, "SUBACK")
        return self._acks[mid]

    def received(self, topic: str, within: float = 2.0) -> list[bytes]:
        """Payloads received on `topic`, waiting up to `within` for the first one."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not any(t == topic for t, _, _ in self.messages):
            time.sleep(0.02)
        return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
