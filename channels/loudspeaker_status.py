"""What the loudspeaker channel hears about devices: online/offline (LWT) and heartbeats.

Each device keeps a retained status on `dev/{id}/status`: `online` (with the device's time)
when it connects and on every heartbeat, `offline` as its LWT or when switched off. The
channel keeps this process's view of it and, when the sink it was started with can keep
device status (`DeviceStatusSink`; the engine's sink writes it to Redis), hands every change
and heartbeat to it, so the console of any process shows it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec
import structlog

from channels.loudspeaker_payload import decode_status
from warnbus.plugin import DeviceState

log = structlog.get_logger("channels.loudspeaker")


@dataclass(frozen=True)
class DeviceView:
    """The last status a device reported (epoch seconds).

    `since`: when it entered this state, as far as we know; `seen`: its last heartbeat (the
    time of its last `online` status: the device's own `at`, never later than when we heard
    it), 0 if it has not sent one since we listen.
    """

    state: DeviceState
    since: float
    area: str | None = None
    seen: float = 0.0


@runtime_checkable
class DeviceStatusSink(Protocol):
    """Optional ability of the sink the channel is started with: keep each device's status
    where every process sees it. `state` is `online` / `offline`, or None when the device
    was retired (its retained status cleared). Called on every status message."""

    def device_status(self, device_id: str, state: str | None, since: float, seen: float,
                      area: str | None) -> Awaitable[None]: ...


@runtime_checkable
class DeviceDirectory(Protocol):
    """Optional ability of the sink: the registry's area (village code) of a device, None
    for a device it does not hold. Playout reports are judged against it."""

    def device_area(self, device_id: str) -> str | None: ...


class DeviceTracker:
    """This process's view of every device's status, fed by the channel's listener."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._devices: dict[str, DeviceView] = {}

    def view(self) -> dict[str, DeviceView]:
        return dict(self._devices)

    def area_of(self, device: str) -> str | None:
        """The area the device last reported being in (its own word, not the registry's)."""
        view = self._devices.get(device)
        return view.area if view is not None else None

    async def on_status(self, device: str, payload: bytes, sink: object) -> None:
        if not payload:  # the retained status was cleared: the device was retired
            self._devices.pop(device, None)
            await self._keep(sink, device, None)
            return
        try:
            status = decode_status(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("malformed loudspeaker status dropped", device=device, error=str(e))
            return
        if status.device and status.device != device:
            log.warning("loudspeaker status refused", device=device,
                        reason=f"the status names device {status.device[:64]!r}")
            return
        if isinstance(sink, DeviceDirectory) and (known := sink.device_area(device)):
            if status.area and status.area != known:
                log.warning("loudspeaker status names another area", device=device,
                            area=status.area[:16], registry_area=known)
            status = msgspec.structs.replace(status, area=known)
        now = self._clock()
        before = self._devices.get(device)
        online = status.state is DeviceState.ONLINE
        if online:  # a heartbeat: the device's time if it sent one (a clock ahead: ours)
            seen = min(status.at.timestamp(), now) if status.at is not None else now
        else:
            seen = before.seen if before is not None else 0.0
        if before is not None and before.state is status.state:
            since = before.since
        else:  # a replayed retained `online` dates from the device's own heartbeat
            since = seen if online and before is None else now
        view = DeviceView(status.state, since, status.area or (before.area if before else None),
                          seen)
        self._devices[device] = view
        await self._keep(sink, device, view)
        # Subscribing replays every device's retained status: log changes, not the replay.
        if before is not None and before.state is not status.state:
            log.info("loudspeaker status changed", device=device, state=status.state.value)

    async def _keep(self, sink: object, device: str, view: DeviceView | None) -> None:
        """Hand the status to the sink, if it keeps device status. Best effort: a status
        that did not make it is written again with the device's next heartbeat."""
        if not isinstance(sink, DeviceStatusSink):
            return
        try:
            if view is None:
                await sink.device_status(device, None, self._clock(), 0.0, None)
            else:
                await sink.device_status(device, view.state.value, view.since, view.seen,
                                         view.area)
        except Exception as e:  # the store may be down; device acks must keep flowing
            log.warning("device status not kept", device=device, error=repr(e))
