"""The county plan's targets, defined once and counted in the database.

Each :class:`Metric` says what it counts — its numerator and denominator as conditions on the
clear columns of a register (or, for key persons, two registers' shares), evaluated as of a
date — and what the plan asks of it. Counting is one ``GROUP BY`` over a code prefix per table,
each metric adding its conditional sums to the scan of the table it counts: a node's children
are the buckets, records filed on the node itself a bucket of their own, and the node's total
the sum. Nothing is decrypted; nothing but counts leaves the database.

As-of semantics: a record counts on date D when it was registered (or effective, or released)
on or before D and had not ended (left, deregistered, closed) by D. Facts without a history —
completeness, a case's assigned officer, aftercare measures — are read as they stand today; a
pledge counts when any pledge in the rental's history covers D.

Who sees what: a role sees a register's metrics (its share of a shared one) when it may list
that register's records, with exact counts; a role holding ``metrics:aggregate`` (leadership)
sees every metric whole, with counts below five suppressed (:mod:`registry.metrics.service`
applies that). Key persons come only from cases the justice bureau and the corrections office
entered — never from matching residents against them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, true

from registry.errors import Invalid
from registry.models import (
    Coordinator,
    CorrectionsCase,
    Jurisdiction,
    Pledge,
    ReleaseCase,
    RentalProperty,
    Residency,
    SurveyBaseline,
)
from registry.vault.base import COORDINATOR, CORRECTIONS, RELEASE, RENTAL, RESIDENT, Kind, Store

METRICS_KIND = Kind("metrics", "metrics", "指标")


@dataclass(frozen=True)
class Part:
    """One register's share of a metric: what it counts there, and why a record is short."""

    kind: Kind
    model: Any
    denominator: Callable[[date], list]
    numerator: Callable[[date], Any]
    why: Callable[[Any, date], list[str]] | None


@dataclass(frozen=True)
class Metric:
    key: str
    zh: str
    en: str
    kind: Kind  # the register counted (what a role must be able to list to see exact counts)
    model: Any
    denominator: Callable[[date], list]  # conditions on the model's columns, as of a date
    numerator: Callable[[date], Any]  # a condition, within the denominator
    target: float | None  # None: reported, no target
    as_of: str  # the as-of semantics, in a sentence
    needs: tuple[Kind, ...] = ()  # further registers the metric reads
    about_people: bool = True  # counts of the registers' subjects (suppressed when small)
    why: Callable[[Any, date], list[str]] | None = None  # a short record's reasons (zh / en)
    surveyed: bool = False  # a survey's count may stand in for a larger denominator
    also: tuple[Part, ...] = ()  # further registers' shares (key persons: two offices)

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return (self.kind, *self.needs)

    @property
    def parts(self) -> tuple[Part, ...]:
        return (Part(self.kind, self.model, self.denominator, self.numerator, self.why),
                *self.also)


def _rental_known(d: date) -> list:
    r = RentalProperty
    return [r.registered_on <= d, or_(r.deregistered_on.is_(None), r.deregistered_on > d)]


def _rental_let(d: date) -> list:
    """Let on D: active now, or deregistered since D (a register keeps no status history;
    a rental taken off the register after D is counted as let until then)."""
    r = RentalProperty
    return [*_rental_known(d), or_(r.status == "active", r.deregistered_on > d)]


def _pledged(d: date):
    """A pledge covers D: the latest one (copied onto the rental), or an earlier one."""
    r = RentalProperty
    return or_(and_(r.pledge_signed_on <= d, r.pledge_valid_until >= d), exists().where(
        Pledge.rental_id == r.id, Pledge.signed_on <= d, Pledge.valid_until >= d))


def _present(d: date) -> list:
    r = Residency
    return [r.arrived_on <= d, or_(r.left_on.is_(None), r.left_on > d)]


def _under_supervision(d: date) -> list:
    c = CorrectionsCase
    return [c.effective_on <= d, c.supervision_end >= d,
            or_(c.ended_on.is_(None), c.ended_on > d)]


def _in_aftercare(d: date) -> list:
    r = ReleaseCase
    return [r.released_on <= d, r.aftercare_until >= d, or_(r.closed_on.is_(None), r.closed_on > d)]


def _missing(row, d: date) -> list[str]:
    return [f"缺少 missing: {m}" for m in row.missing.split(",") if m]


def _pledge(row, d: date) -> list[str]:
    if row.pledge_signed_on is None:
        return ["未签订保证书 no pledge"]
    if row.pledge_signed_on > d:
        return [f"保证书签于{row.pledge_signed_on} pledge signed after {d}"]
    return [f"保证书已于{row.pledge_valid_until}过期 pledge expired {row.pledge_valid_until}"]


def _key_person(row, d: date) -> list[str]:
    reasons = []
    if row.reported_on is None or row.reported_on > d:
        reasons.append("未报到 not reported")
    if row.officer_id is None:
        reasons.append("未指定矫正负责人 no supervising officer")
    return reasons


def _no_group(row, d: date) -> list[str]:
    return ["未落实帮教小组 no aftercare group assigned"]


def _aftercare(row, d: date) -> list[str]:
    return ["帮教措施未落实 aftercare measures not in place"]


def _placement(row, d: date) -> list[str]:
    if row.placement_status == "placed":
        return [f"安置于{row.placed_on}，晚于{d} placed on {row.placed_on}, after {d}"]
    return ["未安置 not placed"]


def _overdue(row, d: date) -> list[str]:
    if row.status == "absconded":
        return ["脱管 absconded"]
    since = row.overdue_on + timedelta(days=1)  # overdue_on is the last day of grace
    return [f"逾期未报到，自{since}起 overdue since {since}"]


METRICS: tuple[Metric, ...] = (
    Metric("rental_registration", "出租房屋基本信息登记录入率",
           "rental basic-info registration rate", RENTAL, RentalProperty, _rental_known,
           lambda d: RentalProperty.missing == "", 1.0,
           "rentals registered by D and not deregistered by D; complete as recorded today",
           why=_missing, surveyed=True),
    Metric("pledge_signing", "治安责任保证书签订率", "security pledge signing rate", RENTAL,
           RentalProperty, _rental_let,
           _pledged, 1.0,
           "rentals let on D (active, or deregistered since) with a pledge signed by D and "
           "valid on D", why=_pledge, surveyed=True),
    Metric("resident_entry", "暂住人口信息录入率", "temporary-resident entry rate", RESIDENT,
           Residency, _present, lambda d: Residency.missing == "", 1.0,
           "residents present on D (arrived by D, not left by D); complete as recorded today",
           why=_missing, surveyed=True),
    Metric("key_person_registration", "重点人员登记率", "key-person registration rate",
           CORRECTIONS, CorrectionsCase, _under_supervision,
           lambda d: and_(CorrectionsCase.officer_id.is_not(None),
                          CorrectionsCase.reported_on.is_not(None),
                          CorrectionsCase.reported_on <= d), 1.0,
           "key persons notified to the jurisdiction and still in its care on D — corrections "
           "cases under supervision (registered complete: reported by D, with a supervising "
           "officer) and prison releases with a handover notice received by D (registered "
           "complete: an aftercare group assigned); each office sees its own share, "
           "leadership both", why=_key_person,
           also=(Part(RELEASE, ReleaseCase,
                      lambda d: [*_in_aftercare(d), ReleaseCase.notice_received_on <= d],
                      lambda d: ReleaseCase.aftercare_group.is_not(None), _no_group),)),
    Metric("aftercare", "帮教率", "aftercare rate", RELEASE, ReleaseCase, _in_aftercare,
           lambda d: ReleaseCase.measures_in_place.is_(True), 1.0,
           "release cases inside the aftercare period on D; measures in place as recorded "
           "today", why=_aftercare),
    Metric("placement", "安置率", "placement rate", RELEASE, ReleaseCase,
           lambda d: [*_in_aftercare(d), ReleaseCase.placement_status != "not_needed"],
           lambda d: and_(ReleaseCase.placement_status == "placed",
                          or_(ReleaseCase.placed_on.is_(None), ReleaseCase.placed_on <= d)),
           0.98, "release cases inside the aftercare period on D that need placement; placed "
           "by D", why=_placement),
    Metric("check_in_compliance", "社区矫正报到合规率", "corrections check-in compliance",
           CORRECTIONS, CorrectionsCase,
           lambda d: [*_under_supervision(d), or_(
               CorrectionsCase.status.in_(("active", "absconded")),
               CorrectionsCase.ended_on > d)],
           lambda d: and_(CorrectionsCase.status != "absconded", or_(
               CorrectionsCase.overdue_on.is_(None), CorrectionsCase.overdue_on >= d)),
           None, "cases under supervision and reported on D (active, absconded, or ended "
           "since); compliant: not absconded and not overdue on D by the schedule as it "
           "stands", why=_overdue),
)
STAFFING = Metric(
    "coordinator_staffing", "协管员配备率", "coordinator staffing", RESIDENT, Coordinator,
    lambda d: [], lambda d: literal(True), 1.0,
    "coordinators on the roster today / max(⌈residents present on D ÷ 500⌉, ⌈rental households "
    "(units of let rentals) on D ÷ 200⌉), in the urban area (setting staffing_areas)",
    needs=(RENTAL, COORDINATOR),
    # staff on a roster and a required head-count: neither counts the registers' subjects
    about_people=False)
BY_KEY = {m.key: m for m in (*METRICS, STAFFING)}
RESIDENTS_PER_COORDINATOR = 500
HOUSEHOLDS_PER_COORDINATOR = 200


@dataclass(frozen=True)
class Counts:
    """One metric's counts for a node's buckets: bucket code → its sums, which add up over
    buckets; :func:`ratio` turns summed sums into (numerator, denominator)."""

    metric: Metric
    exact: bool  # False: the caller sees aggregates only (small counts to be suppressed)
    buckets: dict[str, tuple[int, ...]]
    # Survey baselines: what they add to each child bucket's denominator, and to the node's
    # own beyond its children (see MetricsStore._surveyed).
    extra: dict[str, int]
    node_extra: int = 0


def ratio(metric: Metric, parts: tuple[int, ...]) -> tuple[int, int]:
    """(numerator, denominator) from summed parts: for staffing, coordinators over those
    required by the residents and rental households of the same area."""
    if metric is not STAFFING:
        return parts[0], parts[1]
    staff, residents, households = parts
    return staff, max(-(-residents // RESIDENTS_PER_COORDINATOR),
                      -(-households // HOUSEHOLDS_PER_COORDINATOR))


class MetricsStore(Store):
    kind = METRICS_KIND

    def node(self, code: str | None) -> Jurisdiction:
        """The node asked for (default: the caller's own), if it exists in the caller's scope;
        else 404, audited."""
        vault = self.vault
        code = code or vault.actor.scope
        row = self.session.get(Jurisdiction, code) if code else None
        if row is None or not code.startswith(vault.actor.scope):
            raise vault.hide(METRICS_KIND, "read", code, code)
        return row

    def first_day(self) -> date | None:
        """The earliest day the caller's registers speak of in their area (imported ledgers
        reach back before the registry itself); before it there is nothing to count. Only
        registers whose metrics the caller sees, so the date tells them nothing new. Looked
        up once per vault (a report counts its ancestors, a trend every month end)."""
        return self._earliest

    @cached_property
    def _earliest(self) -> date | None:
        kinds = {p.kind for _, _, parts in self._visible() for p in parts}
        columns = {RENTAL: RentalProperty.registered_on, RESIDENT: Residency.arrived_on,
                   CORRECTIONS: CorrectionsCase.effective_on, RELEASE: ReleaseCase.released_on}
        firsts = [self.session.scalar(select(func.min(column)).where(
            self.vault.scope_filter(column.class_.jurisdiction_code)))
            for kind, column in columns.items() if kind in kinds]
        return min((d for d in firsts if d is not None), default=None)

    def check_date(self, on: date | None) -> date:
        """``on`` (default: today), if the registers can speak of it."""
        today = self.vault.clock.today()
        on = on or today
        if on > today:
            raise Invalid("is in the future", "不能晚于今天", field="as_of")
        first = self.first_day()
        if first is not None and on < first:
            raise Invalid(f"is before the earliest record ({first}): nothing to count",
                          f"早于最早的登记记录（{first}），无可统计", field="as_of")
        return on

    def visible(self) -> list[tuple[Metric, bool]]:
        """The metrics the caller may see, each with whether its counts come exact."""
        return [(metric, exact) for metric, exact, _ in self._visible()]

    def _visible(self) -> list[tuple[Metric, bool, tuple[Part, ...]]]:
        """… and the parts counted: a register's share when the caller may list it (exact);
        every share, for a role that sees aggregates only."""
        vault, out = self.vault, []
        aggregate = vault.allowed(METRICS_KIND, "aggregate")
        for metric in (*METRICS, STAFFING):
            if metric is STAFFING:  # one share, needing three registers
                listed = metric.parts if all(vault.allowed(k, "list")
                                             for k in metric.kinds) else ()
            else:
                listed = tuple(p for p in metric.parts if vault.allowed(p.kind, "list"))
            if aggregate:
                out.append((metric, listed == metric.parts, metric.parts))
            elif listed:
                out.append((metric, True, listed))
        return out

    def count(self, node: Jurisdiction, on: date, *, depth: int = 3,
              audit: bool = True, export: str | None = None) -> list[Counts]:
        """Every visible metric for ``node``'s buckets (children ``depth`` digits longer),
        as of ``on``; one audited read naming the node, the date and the metrics — an
        ``export`` naming the file's format when the figures leave as a file — (the caller
        records it instead with ``audit=False``)."""
        self.require_read(node)
        self.check_date(on)
        width = len(node.code) + depth
        visible = self._visible()
        buckets = self._tally([(m, parts) for m, _, parts in visible], node.code, width, on)
        surveys: dict[str, dict[str, int]] = {}
        for row in self.session.execute(select(
                SurveyBaseline.metric, SurveyBaseline.jurisdiction_code, SurveyBaseline.count)
                .where(SurveyBaseline.surveyed_on <= on,
                       SurveyBaseline.jurisdiction_code.startswith(node.code, autoescape=True))):
            surveys.setdefault(row.metric, {})[row.jurisdiction_code] = row.count
        out = [Counts(metric, exact, buckets.get(metric.key, {}),
                      *self._surveyed(metric, surveys.get(metric.key, {}), node.code, width, on))
               for metric, exact, _ in visible]
        if audit:
            self.audit_read(node, [c.metric.key for c in out], f"as_of={on}"
                            + (f";format={export}" if export else ""),
                            action="export" if export else "read")
        return out

    def audit_read(self, node: Jurisdiction, metrics: list[str], detail: str, *,
                   action: str = "read") -> None:
        self.vault.record(METRICS_KIND, action, record_id=node.code, code=node.code,
                          fields=metrics, detail=detail)

    def require_read(self, node: Jurisdiction) -> None:
        """A role without the metrics is refused (403), the denial naming the node."""
        if not self.vault.allowed(METRICS_KIND, "read"):
            raise self.vault.forbid(METRICS_KIND, "read", node.code, node.code)

    def metric(self, key: str, node: Jurisdiction) -> Metric:
        """A metric the caller may see; any other key is a 404, audited."""
        self.require_read(node)
        found = BY_KEY.get(key)
        if found is None or found not in [m for m, _ in self.visible()]:
            raise self.vault.hide(METRICS_KIND, "read", key, node.code)
        return found

    def _surveyed(self, metric: Metric, surveys: dict[str, int], code: str, width: int,
                  on: date) -> tuple[dict[str, int], int]:
        """What ``surveys`` (place → count, surveyed by ``on``, anywhere under ``code``) add to
        the denominators: a node surveyed at B whose registry count, with what surveys below
        it already add, is C gets max(0, B - C) more — deepest first, so nested surveys add
        up once. Returns the extra per child bucket and the node's own."""
        if not metric.surveyed or not surveys:
            return {}, 0
        added: dict[str, int] = {}
        for place in sorted(surveys, key=len, reverse=True):
            counted = self.session.scalar(select(func.count()).select_from(metric.model).where(
                metric.model.jurisdiction_code.startswith(place, autoescape=True),
                *metric.denominator(on)))
            below = sum(n for other, n in added.items() if other.startswith(place))
            added[place] = max(0, surveys[place] - (counted or 0) - below)
        extra: dict[str, int] = {}
        for place, n in added.items():
            if place != code:
                extra[place[:width]] = extra.get(place[:width], 0) + n
        return extra, added.get(code, 0)

    def shortfall(self, metric: Metric, node: Jurisdiction, on: date, *, page: int,
                  page_size: int, purpose: str | None) -> tuple[int, list[tuple[Any, list]]]:
        """The records that keep ``node`` below the metric's target on ``on``, each with its
        reasons — through the register's own listing, so the caller sees only the records
        and fields their role may (and it is audited as a list). Sealed juvenile cases never
        show; roles that see aggregates only get 403. A metric shared by two registers lists
        the share of the first register the caller may list."""
        vault = self.vault
        if metric.why is None:  # staffing counts staff, not records that could be short
            raise vault.hide(METRICS_KIND, "read", metric.key, node.code)
        share = next((p for p in metric.parts if vault.allowed(p.kind, "list")), None)
        if share is None:  # counts only: refused, the denial naming the node asked about
            raise vault.forbid(metric.kind, "list", node.code, node.code)
        model = share.model
        store = {RENTAL: vault.rentals, RESIDENT: vault.residents,
                 CORRECTIONS: vault.corrections, RELEASE: vault.releases}[share.kind]
        where = [model.jurisdiction_code.startswith(node.code, autoescape=True),
                 *share.denominator(on), case((share.numerator(on), 1), else_=0) == 0,
                 vault.access.unrestricted(getattr(model, store.person_column))]
        if hasattr(model, "juvenile"):
            where.append(model.juvenile.is_(False))
        total = self.session.scalar(select(func.count()).select_from(model).where(*where))
        rows = self.session.scalars(select(model).where(*where).order_by(
            model.jurisdiction_code, model.id).offset((page - 1) * page_size)
            .limit(page_size)).all()
        items = store.listing(rows, "list", purpose=purpose, detail=(
            f"shortfall={metric.key};at={node.code};as_of={on};page={page};total={total}"))
        return total or 0, [(item, share.why(row, on)) for item, row in zip(
            items, rows, strict=True)]

    def _tally(self, metrics: list[tuple[Metric, tuple[Part, ...]]], code: str, width: int,
               on: date) -> dict[str, dict[str, tuple[int, ...]]]:
        """metric key → bucket → sums, with one scan per table: each share of each metric
        adds its sums (numerator and denominator; for staffing coordinators, residents
        present and rental households) to the one GROUP BY of the table it counts."""
        areas = [a for a in self.vault.settings.staffing_areas.split(",") if a]

        def urban(model) -> list:
            return [or_(*(model.jurisdiction_code.startswith(a) for a in areas))] if areas else []

        def when(conditions: list, then=1):
            return case((and_(true(), *conditions), then), else_=0)

        plans: dict[Any, list[tuple[str, int, Any]]] = {}
        for metric, shares in metrics:
            if metric is STAFFING:
                sums = [(Coordinator, 0, when(urban(Coordinator))),
                        (Residency, 1, when([*_present(on), *urban(Residency)])),
                        (RentalProperty, 2, when([*_rental_let(on), *urban(RentalProperty)],
                                                 RentalProperty.units))]
            else:
                sums = []
                for share in shares:
                    denominator = share.denominator(on)
                    sums += [(share.model, 0, when([*denominator, share.numerator(on)])),
                             (share.model, 1, when(denominator))]
            for model, index, measure in sums:
                plans.setdefault(model, []).append((metric.key, index, measure))
        sizes = {m.key: 3 if m is STAFFING else 2 for m, _ in metrics}
        out: dict[str, dict[str, list[int]]] = {m.key: {} for m, _ in metrics}
        for model, measures in plans.items():
            bucket = func.substr(model.jurisdiction_code, 1, width).label("bucket")
            rows = self.session.execute(
                select(bucket, *(func.sum(m) for _, _, m in measures))
                .where(model.jurisdiction_code.startswith(code, autoescape=True))
                .group_by(bucket)).all()
            for row in rows:
                for (key, index, _), value in zip(measures, row[1:], strict=True):
                    sums_of = out[key].setdefault(row[0], [0] * sizes[key])
                    sums_of[index] += int(value or 0)
        return {key: {b: tuple(p) for b, p in by.items() if any(p)}
                for key, by in out.items()}

    def set_baseline(self, code: str, metric: str, *, count: int | None,
                     surveyed_on: date) -> None:
        """Record (or with ``count=None`` remove) a survey's count for a node, audited."""
        vault = self.vault
        vault.require(METRICS_KIND, "baseline")
        found = BY_KEY.get(metric)
        if found is None or not found.surveyed:
            keys = ", ".join(m.key for m in METRICS if m.surveyed)
            raise Invalid(f"takes no survey baseline (those that do: {keys})",
                          "该指标不使用普查基数", field="metric")
        vault.jurisdictions.require_writable(code, METRICS_KIND, "baseline", field="code")
        if surveyed_on > vault.clock.today():
            raise Invalid("is in the future", "不能晚于今天", field="surveyed_on")
        row = self.session.get(SurveyBaseline, (code, metric))
        if count is None:
            if row is not None:
                self.session.delete(row)
        elif row is None:
            self.session.add(SurveyBaseline(
                jurisdiction_code=code, metric=metric, count=count, surveyed_on=surveyed_on,
                recorded_by=vault.actor.id, recorded_at=vault.clock.now()))
        else:
            row.count, row.surveyed_on = count, surveyed_on
            row.recorded_by, row.recorded_at = vault.actor.id, vault.clock.now()
        self.session.flush()
        vault.record(METRICS_KIND, "baseline", record_id=code, code=code, fields=[metric],
                     detail="removed" if count is None else f"count={count};on={surveyed_on}")

    def children(self, code: str) -> dict[str, str]:
        """The node's children: code → name."""
        return dict(self.session.execute(select(Jurisdiction.code, Jurisdiction.name).where(
            Jurisdiction.parent_code == code).order_by(Jurisdiction.code)).all())
