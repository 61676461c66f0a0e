"""Loudspeakers' last status (online/offline, last heartbeat), shared by every process.

The process that runs the MQTT loudspeaker channel hears each device's retained status and
its LWT; through the EventSink it writes them here (one Redis hash), so the console shows
them whichever process it runs in (`warnbus serve --role api`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from warnbus.domain.states import DeviceState
from warnbus.state import keys
from warnbus.state.client import RedisClient


class DeviceRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One device's last known status. Times are epoch seconds; 0 = not known."""

    state: DeviceState
    since: float = 0.0  # when it entered this state (as far as the channel knows)
    seen: float = 0.0  # its last heartbeat: the last `online` status it sent
    area: str | None = None  # the area (village code) it says it serves


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(DeviceRecord)


class DeviceStatusBook:
    """Reads and writes `keys.DEVICES_STATUS`. Several workers may write one device at
    once (each runs the channel); they hear the same messages, so they agree, and a lost
    race is corrected by the next heartbeat."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis: Any = redis  # replies decoded here

    async def device_status(self, device_id: str, state: str | None, since: float,
                            seen: float, area: str | None) -> None:
        """The sink side of `channels.loudspeaker.DeviceStatusSink` (None: retired)."""
        if state is None:
            await self.drop(device_id)
            return
        new = DeviceRecord(DeviceState(state), since, seen, area)
        old = await self.get(device_id)
        if old is not None:
            # A channel that has just started knows less than what is kept: the last
            # heartbeat only moves forward, and an unchanged state keeps its start.
            new = DeviceRecord(
                new.state, min(old.since, since) if old.state is new.state and old.since
                else since, max(old.seen, seen), area or old.area)
        await self.put(device_id, new)

    async def get(self, device_id: str) -> DeviceRecord | None:
        raw = await self.redis.hget(keys.DEVICES_STATUS, device_id)
        try:
            return _dec.decode(raw) if raw else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def put(self, device_id: str, record: DeviceRecord) -> None:
        await self.redis.hset(keys.DEVICES_STATUS, device_id, _enc.encode(record))

    async def drop(self, device_id: str) -> None:
        """The device was retired (its retained status cleared)."""
        await self.redis.hdel(keys.DEVICES_STATUS, device_id)

    async def all(self) -> dict[str, DeviceRecord]:
        out: dict[str, DeviceRecord] = {}
        for k, v in (await self.redis.hgetall(keys.DEVICES_STATUS)).items():
            try:
                out[k.decode() if isinstance(k, bytes) else str(k)] = _dec.decode(v)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a record this version cannot read shows as unknown
        return out
