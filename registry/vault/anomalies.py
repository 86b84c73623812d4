"""The anomaly report's rules, over the access log an auditor may see.

A *read* here is a successful read, list, search or board of a personal-data register by a
signed-in user (events without an account — the CLI operator, loaders — are nobody's
behaviour to judge). For one period (whole local days) each rule names the users it fires
on, with the figures that tripped it and the events (seqs) behind it:

* ``baseline`` — reads far above the user's own mean over the previous periods of the same
  length (a user without reads then has no baseline: the peer rule judges them);
* ``peers`` — reads far above the median of the other users of the same role who read in the
  period;
* ``off_hours`` — reads outside working hours (or at weekends) in the registry's time zone;
* ``unexplained`` — records opened one by one without a purpose that the user never wrote
  (created, updated, checked in…): not their cases, and no reason given;
* ``denials`` — repeated refusals (outcome ``denied``).

An item's id is the period and a digest of (rule, user): the same question asked again gets
the same id, so an auditor's review mark stays with it.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from registry.audit.schemas import AnomalyItem, Period
from registry.config import Settings
from registry.models import AuditEvent

READ_ACTIONS = ("read", "list", "search", "board")
PERSONAL_KINDS = ("rental", "resident", "corrections", "release", "coordinator")
RULES = ("baseline", "peers", "off_hours", "unexplained", "denials")
ITEM_ID = re.compile(r"^(\d{8})-(\d{8})-([0-9a-f]{12})$")


def item_id(period: Period, rule: str, actor_id: uuid.UUID) -> str:
    digest = hashlib.sha256(f"{rule}:{actor_id}".encode()).hexdigest()[:12]
    return f"{period.start:%Y%m%d}-{period.end:%Y%m%d}-{digest}"


def period_of(item: str) -> Period | None:
    """The period an item id names, or None if it is not an item id."""
    match = ITEM_ID.fullmatch(item)
    if match is None:
        return None
    try:
        start, end = (datetime.strptime(match[i], "%Y%m%d").date() for i in (1, 2))
    except ValueError:
        return None
    return Period(start=start, end=end) if start <= end else None


def thresholds(settings: Settings) -> dict[str, float | int]:
    return {name: getattr(settings, f"audit_{name}") for name in (
        "min_reads", "baseline_periods", "baseline_factor", "peer_factor", "off_hours_reads",
        "unexplained_reads", "denials", "work_start_hour", "work_end_hour")}


@dataclass(frozen=True)
class _Event:
    seq: int
    actor_id: uuid.UUID
    actor: str
    role: str
    at: datetime
    action: str
    record_id: str | None
    purpose: str | None


class Detector:
    """Runs the rules for one period over the events ``scope`` lets the auditor see."""

    def __init__(self, session: Session, settings: Settings, tz: tzinfo,
                 scope: list[ColumnElement[bool]]) -> None:
        self.session = session
        self.settings = settings
        self.tz = tz
        self.scope = scope

    def _reads(self, since: datetime, until: datetime) -> list:
        return [AuditEvent.outcome == "ok", AuditEvent.actor_id.is_not(None),
                AuditEvent.action.in_(READ_ACTIONS), AuditEvent.kind.in_(PERSONAL_KINDS),
                AuditEvent.at >= since, AuditEvent.at < until, *self.scope]

    def _events(self, where: list) -> list[_Event]:
        columns = (AuditEvent.seq, AuditEvent.actor_id, AuditEvent.actor, AuditEvent.role,
                   AuditEvent.at, AuditEvent.action, AuditEvent.record_id, AuditEvent.purpose)
        return [_Event(*row) for row in self.session.execute(
            select(*columns).where(*where).order_by(AuditEvent.seq))]

    def run(self, period: Period, since: datetime, until: datetime) -> list[AnomalyItem]:
        s = self.settings
        reads: dict[uuid.UUID, list[_Event]] = defaultdict(list)
        for event in self._events(self._reads(since, until)):
            reads[event.actor_id].append(event)
        items: list[AnomalyItem] = []

        def fire(rule: str, events: list[_Event], figures: dict) -> None:
            last = events[-1]
            items.append(AnomalyItem(
                id=item_id(period, rule, last.actor_id), rule=rule, actor=last.actor,
                actor_id=last.actor_id, role=last.role, figures=figures,
                seqs=[e.seq for e in events]))

        # Own baseline: the previous periods of the same length.
        length = until - since
        earlier = since - length * s.audit_baseline_periods
        baseline = dict(self.session.execute(
            select(AuditEvent.actor_id, func.count()).where(*self._reads(earlier, since))
            .group_by(AuditEvent.actor_id)).all())
        by_role: dict[str, dict[uuid.UUID, int]] = defaultdict(dict)
        for actor_id, events in reads.items():
            by_role[events[-1].role][actor_id] = len(events)
        own = self._own_records(reads)
        for actor_id, events in reads.items():
            count = len(events)
            mean = baseline.get(actor_id, 0) / s.audit_baseline_periods
            if mean and count >= s.audit_min_reads and count > s.audit_baseline_factor * mean:
                fire("baseline", events, {"reads": count, "baseline_mean": round(mean, 1),
                                          "factor": round(count / mean, 1)})
            others = [n for other, n in by_role[events[-1].role].items() if other != actor_id]
            if others:
                median = statistics.median(others)
                if count >= s.audit_min_reads and count > s.audit_peer_factor * median:
                    fire("peers", events, {"reads": count, "peer_median": median,
                                           "peers": len(others),
                                           "factor": round(count / median, 1)})
            odd = [e for e in events if self._off_hours(e.at)]
            if len(odd) >= s.audit_off_hours_reads:
                fire("off_hours", odd, {"off_hours_reads": len(odd), "reads": count,
                                        "work_start_hour": s.audit_work_start_hour,
                                        "work_end_hour": s.audit_work_end_hour})
            loose = [e for e in events if e.action == "read" and not e.purpose
                     and e.record_id and e.record_id not in own.get(actor_id, set())]
            if len(loose) >= s.audit_unexplained_reads:
                fire("unexplained", loose, {"unexplained_reads": len(loose), "reads": count,
                                            "records": len({e.record_id for e in loose})})
        denied: dict[uuid.UUID, list[_Event]] = defaultdict(list)
        for event in self._events([AuditEvent.outcome == "denied",
                                   AuditEvent.actor_id.is_not(None), AuditEvent.at >= since,
                                   AuditEvent.at < until, *self.scope]):
            denied[event.actor_id].append(event)
        for events in denied.values():
            if len(events) >= s.audit_denials:
                fire("denials", events, {"denials": len(events)})
        items.sort(key=lambda i: (RULES.index(i.rule), i.actor))
        return items

    def _off_hours(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        return (not self.settings.audit_work_start_hour <= local.hour
                < self.settings.audit_work_end_hour
                or (self.settings.audit_weekends_off and local.weekday() >= 5))

    def _own_records(self, reads: dict[uuid.UUID, list[_Event]]) -> dict[uuid.UUID, set[str]]:
        """Per user, the records among those they opened without a purpose that they wrote
        at some time (anywhere: their own work defines their cases)."""
        wanted = sorted({e.record_id for events in reads.values() for e in events
                         if e.action == "read" and not e.purpose and e.record_id})
        own: dict[uuid.UUID, set[str]] = defaultdict(set)
        for start in range(0, len(wanted), 1000):
            for actor_id, record_id in self.session.execute(
                    select(AuditEvent.actor_id, AuditEvent.record_id).distinct().where(
                        AuditEvent.record_id.in_(wanted[start:start + 1000]),
                        AuditEvent.actor_id.in_(list(reads)), AuditEvent.outcome == "ok",
                        AuditEvent.action.not_in(READ_ACTIONS))):
                own[actor_id].add(record_id)
        return own


def local_bounds(period: Period, tz: tzinfo) -> tuple[datetime, datetime]:
    """The period's first and (excluded) last instants: local midnights."""
    return (datetime.combine(period.start, time.min, tzinfo=tz),
            datetime.combine(period.end + timedelta(days=1), time.min, tzinfo=tz))
