"""The one source of "now", so tests can fix the date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo


@dataclass
class Clock:
    """Times are stored in UTC; dates ("today", "in the future") are the offices' local
    dates, in ``tz`` (the ``timezone`` setting)."""

    fixed: datetime | None = None
    tz: tzinfo = UTC

    def now(self) -> datetime:
        return self.fixed or datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()
