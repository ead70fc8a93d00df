"""A site's opening hours (``[hours]``): when a counsellor can be reached, as pure logic.

Nothing here reads a clock: every question takes ``now`` (an aware datetime), so the
protocol, the worker and the relay ask it about the time they were given (the app's
clock, see :func:`adapter.state.clock_now`) and tests ask it about any instant.

The schedule is in the site's own wall time (an IANA zone, DST included): ``08:00`` is
eight on the helpline's clocks, in winter and in summer alike. A range may run past
midnight (``"22:00-02:00"``: the tail belongs to the next day), a day may have several,
a day absent is closed, and a ``closed`` date (a holiday) is closed all day, whatever the
week says. This module imports nothing of ours (``adapter.sites`` reads it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OUTSIDE = ("hold", "close")
#: How far ahead an opening is looked for: a year of holidays and then some.
HORIZON_DAYS = 400

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

#: One day's open time, in the site's wall time: ``end`` None means midnight (24:00).
Range = tuple[time, time | None]


class HoursError(ValueError):
    """A bad ``[hours]`` value; the message starts with the key (``hours.monday``)."""


@dataclass(frozen=True)
class Hours:
    timezone: str
    #: Weekday (Monday 0) → its open ranges, past-midnight tails already moved to the
    #: next day; sorted, so the first start after a closed instant is the next opening.
    weekly: Mapping[int, tuple[Range, ...]]
    closed: frozenset[date]
    outside: str = "hold"  # "hold" | "close"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, now: datetime) -> datetime:
        return _aware(now).astimezone(self.zone)

    def is_open(self, now: datetime) -> bool:
        local = self.local(now)
        if local.date() in self.closed:
            return False
        clock = local.time().replace(tzinfo=None)
        return any(start <= clock and (end is None or clock < end)
                   for start, end in self.weekly.get(local.weekday(), ()))

    def next_opening(self, now: datetime) -> datetime | None:
        """When it is next open, at or after ``now``, in the site's zone (``now`` itself
        when open); None when nothing in the schedule ever opens."""
        now = _aware(now)
        if self.is_open(now):
            return self.local(now)
        day = self.local(now).date()
        for offset in range(HORIZON_DAYS):
            current = day + timedelta(days=offset)
            if current in self.closed:
                continue
            for start, _ in self.weekly.get(current.weekday(), ()):
                opening = _wall_time(current, start, self.zone)
                if opening >= now:
                    return opening
        return None


def _aware(now: datetime) -> datetime:
    """Naive datetimes are UTC here (the database's convention, ``models.utcnow``)."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _wall_time(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``at`` on the zone's clocks. A time the clocks skip (in the hour lost
    to summer time) opens at the first instant the clocks show a later time: 01:30 in a
    01:00→02:00 jump opens at 02:00 summer time, as :meth:`Hours.is_open` sees it."""
    naive = datetime.combine(day, at)
    candidate = naive.replace(tzinfo=zone)
    if candidate.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return candidate
    # In a gap: the transition lies between the two readings of the wall time.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


def parse_hours(raw: Mapping) -> Hours:
    """The ``[hours]`` table, validated; :class:`HoursError` names the key at fault."""
    known = {"timezone", "closed", "outside", "always_open", *DAYS}
    for key in raw:
        if key not in known:
            raise HoursError(f"hours.{key}: unknown key (known: {', '.join(sorted(known))})")
    name = raw.get("timezone")
    if not isinstance(name, str) or not name:
        raise HoursError("hours.timezone: required, an IANA zone name (e.g. Africa/Nairobi)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HoursError(f"hours.timezone: unknown time zone {name!r}") from exc
    outside = raw.get("outside", "hold")
    if outside not in OUTSIDE:
        raise HoursError(f"hours.outside: must be one of {', '.join(OUTSIDE)}, not {outside!r}")
    always_open = raw.get("always_open", False)
    if not isinstance(always_open, bool):
        raise HoursError("hours.always_open: must be true or false")
    if always_open and any(day in raw for day in DAYS):
        raise HoursError("hours.always_open: true beside a weekly schedule: one or the other")
    weekly: dict[int, list[Range]] = {}
    if always_open:
        weekly = {day: [(time(0), None)] for day in range(7)}
    else:
        for index, day in enumerate(DAYS):
            ranges = raw.get(day, [])
            if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
                raise HoursError(f'hours.{day}: a list of "HH:MM-HH:MM" ranges')
            for text in ranges:
                for weekday, piece in _ranges(text, index, f"hours.{day}"):
                    weekly.setdefault(weekday, []).append(piece)
    closed = raw.get("closed", [])
    if not isinstance(closed, list):
        raise HoursError("hours.closed: a list of dates (YYYY-MM-DD)")
    dates = set()
    for value in closed:
        if isinstance(value, date) and not isinstance(value, datetime):
            dates.add(value)
            continue
        try:
            dates.add(date.fromisoformat(str(value)))
        except ValueError as exc:
            raise HoursError(f"hours.closed: {value!r} is not a date (YYYY-MM-DD)") from exc
    for weekday, pieces in weekly.items():
        pieces.sort(key=lambda piece: piece[0])
        for (_, end), (start, _) in zip(pieces, pieces[1:], strict=False):
            if end is None or end > start:
                raise HoursError(f"hours.{DAYS[weekday]}: ranges overlap")
    return Hours(timezone=name, weekly={day: tuple(p) for day, p in weekly.items()},
                 closed=frozenset(dates), outside=outside)


def _ranges(text: str, weekday: int, key: str) -> list[tuple[int, Range]]:
    """``"08:00-17:00"`` → that day's range; ``"22:00-02:00"`` → to midnight, and the
    tail on the next day."""
    match = _RANGE.match(text.strip())
    if match is None:
        raise HoursError(f'{key}: {text!r} is not a range "HH:MM-HH:MM" (24-hour clock)')
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if h2 == 24 and m2:
        raise HoursError(f"{key}: {text!r}: 24:00 is the latest end")
    start = time(h1, m1)
    end = None if h2 == 24 else time(h2, m2)
    if end is None or start < end:
        return [(weekday, (start, end))]
    if start == end:
        raise HoursError(f"{key}: {text!r} opens and closes at the same time "
                         '(always open: "00:00-24:00")')
    following = (weekday + 1) % 7
    return [(weekday, (start, None))] + ([(following, (time(0), end))] if end != time(0)
                                          else [])


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-03-30T07:00:00Z``."""
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(moment: datetime | None) -> str | None:
    """``2026-03-30T08:00:00+01:00``: the wall time and the site's offset then."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat()


#: What an ``after_hours`` text may name: the next opening, in the site's wall time.
OPENING_PLACEHOLDERS = ("weekday", "date", "time", "timezone", "next_opening_local")


def opening_text(template: str, params: Mapping) -> str:
    """An ``after_hours`` text with the next opening filled in (the event's ``params``:
    ``next_opening_local``, ``timezone``); a text's placeholders were checked at load."""
    local = params.get("next_opening_local")
    if not local:
        return template
    opening = datetime.fromisoformat(local)
    return template.format(
        weekday=opening.strftime("%A"), date=opening.date().isoformat(),
        time=opening.strftime("%H:%M"), timezone=params.get("timezone") or "",
        next_opening_local=local)


def after_hours_text(texts, params: Mapping, language: str | None) -> tuple[str | None, str | None]:
    """What the child is told after hours, in their language (or the fallback): the
    ``after_hours`` text with the next opening, or, with no opening ahead at all, the
    ``no_counsellor`` text (it gives the emergency number and claims no time)."""
    if not params.get("next_opening_local"):
        return texts.text_for("no_counsellor", language)
    template, used = texts.text_for("after_hours", language)
    return (opening_text(template, params), used) if template else (None, None)
