"""Office hours in the Netherlands, with a clock tests can set (ASSISTANT_NOW, ISO 8601)."""
from __future__ import annotations

import datetime
import os
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OFFICE_OPENS = datetime.time(8, 0)
OFFICE_CLOSES = datetime.time(17, 0)


def now() -> datetime.datetime:
    """The current time in Amsterdam; `ASSISTANT_NOW` (e.g. 2026-11-28T03:00) fixes it for tests."""
    fixed = os.environ.get("ASSISTANT_NOW")
    if fixed:
        moment = datetime.datetime.fromisoformat(fixed)
        return moment if moment.tzinfo else moment.replace(tzinfo=AMSTERDAM)
    return datetime.datetime.now(AMSTERDAM)


@lru_cache(maxsize=4)
def dutch_public_holidays(year: int) -> holidays.HolidayBase:
    """The year's Dutch public holidays (computed once per year and process: ~0.7 ms a call else)."""
    return holidays.country_holidays("NL", years=year)


def is_office_hours(moment: datetime.datetime) -> bool:
    """Weekdays 08:00–17:00 that are not Dutch public holidays (the huisarts is open)."""
    local = moment.astimezone(AMSTERDAM)
    if local.weekday() >= 5 or local.date() in dutch_public_holidays(local.year):
        return False
    return OFFICE_OPENS <= local.time() < OFFICE_CLOSES
