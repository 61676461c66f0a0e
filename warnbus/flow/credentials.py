"""Who may speak for which sender: the credential an alert comes in under, and its checks.

Every way in has one: an API token (`of_token`), a polled feed (`of_feed`), the console
(`of_console`). A credential names the CAP senders it may publish under and its scope: region
code prefixes and CAP categories (empty = all). A thread belongs to its sender, so a credential
never sees, continues, cancels or pre-empts another sender's thread. One exception, never
for a token or a feed: the console continues another sender's thread (an Update or Cancel on
the county's behalf) under its own sender once an approver approved it (`of_console` with
`on_behalf`); docs/security.md, Decisions.

`intake.accept` runs these checks cheapest first, each before anything costlier: the sender
and the references (no look-up at all), the categories (declared, and of the hazard the event
names), the areas' geocodes (no geometry); then, after Redis and matching, what the thread
already reached (`check_reach`) and the villages the message reaches (`check_villages`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from warnbus.domain.models import Alert, Area, Info, MsgType
from warnbus.errors import AuthError
from warnbus.flow.ports import HazardLike
from warnbus.registry import Registry
from warnbus.runtime.config import ANY_SENDER, FeedSettings, Settings, TokenSettings

HazardOf = Callable[[Info], HazardLike | None]
#: Members of a thread's reach (keys.CampaignKeys.reach): a village, a CAP category.
VILLAGE, CATEGORY = "v:", "c:"
AREA = "area:"  # the target id of a village's loudspeakers (planner.plan_areas)


@dataclass(frozen=True)
class Credential:
    """What one credential may publish: its senders, regions and categories (empty = all)."""

    name: str
    senders: tuple[str, ...]
    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    reserved: tuple[str, ...] = ()  # senders that "*" does not cover: the console's
    #: May continue a thread of another sender (references naming it), under its own sender:
    #: only the console's credential for a message an approver approved (`of_console`).
    on_behalf: bool = False

    def speaks_for(self, sender: str) -> bool:
        if sender in self.senders:
            return True
        return ANY_SENDER in self.senders and sender not in self.reserved

    def covers(self, code: str) -> bool:
        """Whether a region code (a village's, a person's) lies inside the regions."""
        return not self.regions or code.startswith(self.regions)

    @property
    def scoped(self) -> bool:
        return bool(self.regions or self.categories)


#: The engine's own callers (the demo, the benchmarks) and tests: any sender, no scope.
#: Never for a request from outside.
ENGINE = Credential("engine", (ANY_SENDER,))


def of_token(token: TokenSettings, console_sender: str) -> Credential:
    return Credential(token.name, token.senders, token.regions, token.categories,
                      reserved=(console_sender,))


def of_feed(feed: FeedSettings) -> Credential:
    return Credential(f"feed {feed.name}", feed.senders, feed.regions, feed.categories)


def of_console(sender: str, *, on_behalf: bool = False) -> Credential:
    """The console's credential; `on_behalf`: for an approved Update or Cancel of another
    sender's thread, published under the console's sender."""
    return Credential("console", (sender,), on_behalf=on_behalf)


def console_sender(settings: Settings, registry: Registry) -> str:
    """The CAP sender the console publishes under: `[console] sender`, else
    `<county code>00000000@console.warnbus`."""
    if settings.console.sender:
        return settings.console.sender
    county = registry.county_codes[0][:6] if registry.county_codes else "000000"
    return f"{county}00000000@console.warnbus"


def _forbidden(message: str) -> AuthError:
    return AuthError(message, forbidden=True)


def _outside(cred: Credential) -> str:
    return f"outside the regions of {cred.name} ({', '.join(cred.regions)})"


def check_sender(cred: Credential, alert: Alert) -> None:
    """The alert's sender is one the credential speaks for, and an Update or Cancel references
    alerts of that same sender only (unless the credential is `on_behalf`).

    Runs before any look-up: a credential learns nothing of another sender's alerts, not even
    whether one exists (the same 403 either way)."""
    if not cred.speaks_for(alert.sender):
        raise _forbidden(f"sender: {cred.name} may not publish as sender {alert.sender!r} "
                         f"(its senders: {', '.join(cred.senders) or 'none'})")
    if alert.msg_type in (MsgType.UPDATE, MsgType.CANCEL) and not cred.on_behalf:
        for k, ref in enumerate(alert.references):
            if ref.sender != alert.sender:
                raise foreign_thread(alert, f"references[{k}]")


def foreign_thread(alert: Alert, field: str = "references") -> AuthError:
    return _forbidden(
        f"{field}: an {alert.msg_type.value} continues a thread of its own sender "
        f"({alert.sender}) only; an alert of another sender may not be referenced")


def categories_of(alert: Alert, hazard_of: HazardOf) -> set[str]:
    """The CAP categories an alert declares, and those of the hazards its events name."""
    out: set[str] = set()
    for info in alert.infos:
        out.update(c.value for c in info.categories)
        hazard = hazard_of(info)
        if hazard is not None:
            out.add(hazard.category.value)
    return out


def check_categories(cred: Credential, alert: Alert, hazard_of: HazardOf) -> None:
    """Each info's declared categories, and the category of the hazard its event or event
    code names (what will actually be sent, whatever `<category>` says), are allowed."""
    if not cred.categories:
        return
    for i, info in enumerate(alert.infos):
        for c in info.categories:
            if c.value not in cred.categories:
                raise _forbidden(f"info[{i}].category: {cred.name} may not publish "
                                 f"category {c.value}")
        hazard = hazard_of(info)
        if hazard is not None and hazard.category.value not in cred.categories:
            raise _forbidden(
                f"info[{i}].event: {info.event or hazard.name} is a {hazard.name} warning, "
                f"category {hazard.category.value}, which {cred.name} may not publish")


def check_area_codes(cred: Credential, alert: Alert,
                     region_codes: Callable[[Area], Sequence[str]]) -> None:
    """Refuse an area whose geocodes lie outside the regions, before any geometry.

    An area its geocodes define (no polygon or circle) must lie inside: a code wider than the
    regions (the county, for a township's token) reaches beyond them. The geocodes of a
    polygon or circle are context (often the issuing county): only one that shares nothing
    with the regions refuses it here; the grids of the shape are checked after matching."""
    if not cred.regions:
        return
    for i, info in enumerate(alert.infos):
        for j, area in enumerate(info.areas):
            defines = not area.polygons and not area.circles
            for code in region_codes(area):
                if cred.covers(code):
                    continue
                if defines or not any(r.startswith(code) for r in cred.regions):
                    raise _forbidden(f"info[{i}].area[{j}]: the geocode of region {code} "
                                     f"is {_outside(cred)}")


def check_villages(cred: Credential, villages: Iterable[str], field: str = "area") -> None:
    """Every village the message reaches lies inside the regions."""
    if not cred.regions:
        return
    for v in villages:
        if not cred.covers(v):
            raise _forbidden(f"{field}: the alert reaches village {v}, {_outside(cred)}")


def check_person(registry: Registry, cred: Credential, person_id: str) -> None:
    """A person a credential confirms for serves inside its regions (`serves_within`)."""
    code = _served_outside(registry, cred, person_id)
    if code is not None:
        raise _forbidden(f"person_id: {person_id} serves {code}, {_outside(cred)}")


def serves_within(registry: Registry, cred: Credential, target_id: str) -> bool:
    """Whether a campaign target lies inside the credential's regions: a person whose every
    grid lies in a village inside or, holding none (a duty officer), whose region does; a
    village's loudspeakers (`area:<village>`, as the planner names them) by their village.

    A person the registry does not know passes: no campaign has them as a target."""
    if target_id.startswith(AREA):
        return cred.covers(target_id[len(AREA):])
    return _served_outside(registry, cred, target_id) is None


def _served_outside(registry: Registry, cred: Credential, person_id: str) -> str | None:
    person = registry.data.persons.get(person_id)
    if not cred.regions or person is None:
        return None
    grids = registry.data.grids
    for code in [grids[g].village for g in registry.grids_held_by(person_id)] or [person.region]:
        if not cred.covers(code):
            return code
    return None


def check_thread_read(cred: Credential, reach: Iterable[str], field: str = "alert_id") -> None:
    """A credential bounded to regions reads only threads that reached a village inside
    them: a thread's record names people (and what they typed) beyond them otherwise."""
    if not cred.regions:
        return
    if not any(m.startswith(VILLAGE) and cred.covers(m[len(VILLAGE):]) for m in reach):
        raise _forbidden(f"{field}: this thread reaches no village inside the regions of "
                         f"{cred.name} ({', '.join(cred.regions)})")


def reach_of(villages: Iterable[str], categories: Iterable[str]) -> list[str]:
    """A message's contribution to its thread's reach."""
    return [VILLAGE + v for v in villages] + [CATEGORY + c for c in sorted(categories)]


def check_reach(cred: Credential, alert: Alert, reach: Iterable[str]) -> None:
    """An Update or Cancel is judged by what its thread reached too: a credential may not
    rewrite or end a warning to people outside its scope, nor one of another category."""
    for m in reach:
        if m.startswith(VILLAGE) and not cred.covers(m[len(VILLAGE):]):
            raise _forbidden(f"references: the thread this {alert.msg_type.value} continues "
                             f"reaches village {m[len(VILLAGE):]}, {_outside(cred)}")
        if m.startswith(CATEGORY) and cred.categories and (
                m[len(CATEGORY):] not in cred.categories):
            raise _forbidden(f"references: the thread this {alert.msg_type.value} continues "
                             f"is of category {m[len(CATEGORY):]}, which {cred.name} may not "
                             "publish")
