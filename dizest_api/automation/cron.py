"""Cron expressions with a time zone, as Celery's `crontab` schedule that redbeat runs.

Five fields (minute hour day-of-month month day-of-week) or an alias (`@hourly`, `@daily`,
`@weekly`, `@monthly`, `@yearly`). A sixth (seconds) field is refused: a schedule fires at most
once a minute. An expression that can never fire (`0 0 31 2 *`) is refused too. The time zone
is an IANA name (`Europe/Paris`); the fields are matched in that zone, so `0 9 * * *` is 9:00
there, summer and winter.

redbeat stores a crontab by its fields only; the zone travels in the entry's kwargs and
`zoned` rebuilds the schedule from both (see `beat.Entry`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab

from dizest_core.errors import InputError

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class CronError(InputError):
    """An invalid cron expression or time zone (422 invalid_schedule)."""

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__("invalid_schedule", message, details)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}", {"timezone": name}) from None


def zoned(expression: str, tz: str, app: Any = None) -> crontab:
    """The crontab for `expression` in time zone `tz`; CronError when either is invalid."""
    if not isinstance(expression, str) or len(expression) > 200:
        raise CronError("cron must be a string of at most 200 characters")
    if not expression.isascii():  # int() reads every script's digits ('\u0661' is 1)
        raise CronError(
            f"cron {expression!r} may hold only ASCII: digits, names, '*,-/' and spaces",
            {"cron": expression},
        )
    fields = ALIASES.get(expression.strip().lower(), expression).split()
    if len(fields) == 6:
        raise CronError(
            f"cron {expression!r} has a seconds field: a schedule fires at most once a minute",
            {"cron": expression},
        )
    if len(fields) != 5:
        raise CronError(
            f"cron {expression!r} must have 5 fields: minute hour day-of-month month day-of-week",
            {"cron": expression},
        )
    minute, hour, dom, month, dow = fields
    try:
        schedule = crontab(minute, hour, dow, dom, month, app=app)
    except (ValueError, ParseException, IndexError) as exc:
        raise CronError(f"invalid cron {expression!r}: {exc}", {"cron": expression}) from None
    schedule.tz = zone(tz)  # shadows crontab's cached_property (the app's zone) for this one
    try:
        next_after(schedule, datetime.now(UTC))
    except RuntimeError:  # celery: 'unable to rollover'
        raise CronError(f"cron {expression!r} never fires", {"cron": expression}) from None
    return schedule


def next_after(schedule: crontab, moment: datetime) -> datetime:
    """The first time `schedule` fires after `moment` (aware), in UTC."""
    last, delta, _ = schedule.remaining_delta(moment, tz=schedule.tz)
    fire: datetime = last + delta
    if fire <= moment:  # a fire time equal to moment is not "after" it
        last, delta, _ = schedule.remaining_delta(moment + timedelta(minutes=1), tz=schedule.tz)
        fire = last + delta
    return fire.astimezone(UTC)
