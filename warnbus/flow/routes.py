"""Paths to a person: routes over several accounts, spread by rate, and per-number limits.

A route is a channel name the policy uses that several configured channels carry (`[routes]`
in the settings: `voice = ["voice-aliyun", "voice-tencent"]`). The planner spreads the
persons of one planning call over a route's channels by their rates (`spread`), so a first
wave to every primary officer ends as early as the combined rates allow (`first_round_s`).

Each provider account has per-number limits (`warnbus.state.numberlimits`; `[limits.*]`, else
the provider's documented defaults by channel type). Before a call or SMS would exceed one,
the dispatcher takes the next path instead (`next_paths`: the route's other channels, then the
policy's fallback chain), and the record says why; a provider's own limit refusal
(`LimitedChannelError`) is re-routed the same way. Neither is the person's failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from warnbus.domain.models import Person, TargetKind
from warnbus.errors import ConfigError
from warnbus.plugin import ChannelInfo, Medium
from warnbus.runtime.config import LimitSettings
from warnbus.state.numberlimits import PRESETS, NumberLimits, Window

#: The rate a channel without a declared one counts with when a route is spread.
UNLIMITED_RATE = 1e9


@dataclass(frozen=True)
class Account:
    """A provider account's limits, and the name of its shared per-number record."""

    name: str
    limits: NumberLimits


def account_limits(entry: LimitSettings) -> NumberLimits:
    """The limits a `[limits.*]` entry declares: its preset, then its own values."""
    base = PRESETS.get(entry.preset, NumberLimits())
    windows = base.windows if entry.windows is None else tuple(
        Window(w.count, w.seconds) for w in entry.windows)
    return NumberLimits(
        windows=windows,
        per_day=base.per_day if entry.per_day is None else entry.per_day,
        per_night=base.per_night if entry.per_night is None else entry.per_night,
        night=entry.night, margin_s=entry.margin_s)


class RoutedChannels(dict[str, ChannelInfo]):
    """The configured channels by name (what `Context.channels` is), with the routes and
    per-number limits over them. Built once by the composition root (`build`)."""

    routes: dict[str, tuple[str, ...]]
    accounts: dict[str, Account]

    @classmethod
    def build(cls, infos: Mapping[str, ChannelInfo], routes: Mapping[str, Sequence[str]],
              limits: Mapping[str, LimitSettings]) -> RoutedChannels:
        """Check the routes and limits against the channels (ConfigError naming the key)."""
        out = cls(infos)
        out.routes, out.accounts = {}, {}
        problems: list[str] = []
        for name, members in routes.items():
            known = [m for m in members if m in infos]
            media = {infos[m].medium for m in known}
            if not members or len(set(members)) != len(members):
                problems.append(f"routes.{name}: list its channels, each once")
            elif len(media) > 1:
                problems.append(f"routes.{name}: its channels send by different media "
                                f"({', '.join(sorted(media))})")
            elif any(infos[m].target is not TargetKind.PERSON for m in known):
                problems.append(f"routes.{name}: a route carries messages to persons")
            elif known:
                out.routes[name] = tuple(known)
        for account, entry in limits.items():
            for ch in entry.channels or (account,):
                if ch not in infos:
                    problems.append(f"limits.{account}: no channel {ch!r} is configured")
                else:
                    out.accounts[ch] = Account(account, account_limits(entry))
        if problems:
            raise ConfigError("; ".join(problems))
        for name, info in infos.items():
            preset = PRESETS.get(info.kind)
            if name not in out.accounts and preset is not None:
                # One record per account and product: the breaker key names the account at
                # the product's endpoint (two channels on one account share it).
                out.accounts[name] = Account(f"{info.kind}@{info.breaker_key}", preset)
        return out

    def account(self, channel: str) -> Account | None:
        """The account whose per-number limits `channel` sends under (None: no limits)."""
        acc = self.accounts.get(channel)
        return acc if acc is not None and not acc.limits.empty else None

    def route_of(self, channel: str) -> str | None:
        return next((r for r, ms in self.routes.items() if channel in ms), None)

    def next_paths(self, channel: str, fallback_for: Callable[[str], str | None]) -> list[str]:
        """Where a message refused on `channel` for a limit goes next, in order: the other
        channels of its route (after it, then round), then the policy's fallback chain from
        the route (each route's channels in its order). Configured channels only."""
        route = self.route_of(channel)
        out: list[str] = []
        if route is not None:
            ms = self.routes[route]
            i = ms.index(channel)
            out += ms[i + 1:] + ms[:i]
        name = route or channel
        seen = {name}
        nxt = fallback_for(name)
        while nxt is not None and nxt not in seen:
            seen.add(nxt)
            out += self.routes.get(nxt, (nxt,))
            nxt = fallback_for(nxt)
        kept: list[str] = []
        for c in out:
            if c != channel and c in self and c not in kept:
                kept.append(c)
        return kept

    def first_round_s(self, name: str, persons: int) -> float | None:
        """How long the first messages to `persons` over `name` (a channel or a route) take
        at the declared rates: persons / the sum of the rates; None without a rate."""
        members = self.routes.get(name, (name,) if name in self else ())
        rates = [self[m].rate_per_s for m in members]
        if not rates or any(r is None for r in rates):
            return None
        return persons / sum(r for r in rates if r is not None)


def first_round_s(channels: Mapping[str, ChannelInfo], sends: Mapping[str, int]
                  ) -> float | None:
    """How long a first wave of `sends` (messages per channel) takes at the declared rates:
    the slowest channel's, a route's channels counting together (they are spread by rate);
    None when no channel declares a rate."""
    routes = channels.routes if isinstance(channels, RoutedChannels) else {}
    groups: dict[str, list[str]] = {}
    for name in sends:
        route = next((r for r, ms in routes.items() if name in ms), name)
        groups.setdefault(route, []).append(name)
    times = [sum(sends[m] for m in ms) / sum(rates)
             for ms in groups.values()
             if (rates := [r for m in ms if m in channels
                           and (r := channels[m].rate_per_s) is not None])
             and len(rates) == len(ms)]
    return max(times) if times else None


def paths_of(channels: Mapping[str, ChannelInfo], name: str, person: Person) -> list[str]:
    """The channels `name` stands for to `person`: a route's channels, the one a wave gives
    the person first, then the others in the route's order; anything else itself."""
    routes = channels.routes if isinstance(channels, RoutedChannels) else {}
    members = [m for m in routes.get(name, ()) if m in channels]
    if not members:
        return [name]
    own = routed(channels, [name], [person])[0][0]
    return [own] + [m for m in members if m != own]


def routed(channels: Mapping[str, ChannelInfo], names: Sequence[str],
           persons: Sequence[Person]) -> list[tuple[str, Sequence[Person]]]:
    """(channel, persons) for each channel or route of `names`: a route's persons spread
    over its channels by rate (`spread`); anything else keeps them all."""
    routes = channels.routes if isinstance(channels, RoutedChannels) else {}
    out: list[tuple[str, Sequence[Person]]] = []
    for name in names:
        members = [m for m in routes.get(name, ()) if m in channels]
        if not members:
            out.append((name, persons))
            continue
        rates = [channels[m].rate_per_s or UNLIMITED_RATE for m in members]
        out += [(m, group) for m, group in zip(members, spread(rates, persons), strict=True)
                if group]
    return out


def spread(rates: Sequence[float], persons: Sequence[Person]) -> list[list[Person]]:
    """Split `persons` over channels of `rates` in proportion (largest remainder), so that
    each finishes its share at the same time.

    Persons are taken in the order of their ids' hashes (a channel's share is not one
    township), the lowest to the first channel. One person alone (a redial, an escalation)
    goes where the hash falls among the rates' shares of [0, 1), which is where a wave put
    them: each is called again by the account that called them first, and that account's
    per-number limits are the ones their calls run into (then `next_paths`)."""
    n, total = len(persons), sum(rates)
    if n == 1:
        u = int.from_bytes(_rank(persons[0]), "big") / 2**64
        edge = 0.0
        for i, r in enumerate(rates):
            edge += r / total
            if u < edge or i == len(rates) - 1:
                return [list(persons) if j == i else [] for j in range(len(rates))]
    quotas = [n * r / total for r in rates]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(rates)), key=lambda i: (-(quotas[i] - counts[i]), -rates[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    ranked = sorted(persons, key=_rank)
    out: list[list[Person]] = []
    start = 0
    for c in counts:
        out.append(ranked[start:start + c])
        start += c
    return out


def _rank(p: Person) -> bytes:
    return hashlib.blake2b(p.id.encode(), digest_size=8).digest()


def noun(medium: Medium) -> str:
    """What one send of `medium` is called in a reason ("2 calls in 10 min")."""
    return {Medium.VOICE: "call", Medium.SMS: "message"}.get(medium, "message")
