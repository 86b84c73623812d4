"""The targets report: the gate's counts shaped per node and child, with rates, targets, gaps
and — for roles that see aggregates only — small counts suppressed so that no cell below five
can be read off, directly or by subtracting siblings from their parent.

Suppression (for a metric whose records the caller may not list): a count of 1–4 shows as
``<5``; among a parent's children, further cells of the column are hidden (``*``, smallest
first) until parent minus the shown siblings pins none of the hidden ones down (complementary
suppression); a row with a hidden count
shows no rate, gap or verdict, since each would give the count back. Every report shows a
node's count the same way: a node hidden in its parent's report is hidden in its own, with
all its children (they would add up to it), so no report gives back what another hides.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from registry.metrics.export import chart_svg
from registry.metrics.schemas import (
    BaselineIn,
    MetricRow,
    Report,
    ShortfallItem,
    ShortfallPage,
    TrendPoint,
)
from registry.vault.gate import Vault
from registry.vault.metrics import Counts, ratio

SMALL = 5
HIDDEN = "<5"
COMPLEMENT = "*"  # hidden so that a small neighbour cannot be worked out


def report(vault: Vault, *, at: str | None, as_of: date | None,
           export: str | None = None) -> Report:
    """The report for a node; ``export`` (a file format) when it leaves as a file, which the
    audit log then records as an export."""
    store = vault.metrics
    node = store.node(at)
    on = as_of or vault.clock.today()
    children = store.children(node.code)
    counted = store.count(node, on, export=export)
    inherited = _inherited(vault, node.code, on)
    rows = []
    for counts in counted:
        rows += _rows(counts, node.code, node.name, children,
                      inherited.get(counts.metric.key, {}))
    return Report(code=node.code, name=node.name, level=node.level, as_of=on, rows=rows)


def _inherited(vault: Vault, code: str, on: date) -> dict[str, dict[int, str]]:
    """Per suppressed metric, the node's own cells that the reports above it hide: every
    report shows a node's count the same way, so no report gives back what another hides.
    Worked out top-down from the caller's own node (one count per ancestor on the way)."""
    store, scope = vault.metrics, vault.actor.scope
    hidden: dict[str, dict[int, str]] = {}
    if all(exact or not m.about_people for m, exact in store.visible()):
        return hidden  # nothing this caller sees is suppressed
    for size in (6, 9, 12):
        if not (len(scope) <= size < len(code)):
            continue
        ancestor = store.node(code[:size])
        names = store.children(ancestor.code)
        following = code[:size + 3]
        for counts in store.count(ancestor, on, audit=False):
            if counts.exact or not counts.metric.about_people:
                continue
            rows = _rows(counts, ancestor.code, ancestor.name, names,
                         hidden.get(counts.metric.key, {}))
            row = next(r for r in rows if r.code == following and not r.node)
            hidden[counts.metric.key] = {
                column: value for column, value in ((2, row.numerator), (3, row.denominator))
                if isinstance(value, str)}
    return hidden


def shortfall(vault: Vault, metric: str, *, at: str | None, as_of: date | None, page: int,
              page_size: int, purpose: str | None) -> ShortfallPage:
    """The records short of one metric's target under a node, with the reasons."""
    store = vault.metrics
    node = store.node(at)
    found = store.metric(metric, node)
    on = store.check_date(as_of)
    total, items = store.shortfall(found, node, on, page=page, page_size=page_size,
                                   purpose=purpose)
    return ShortfallPage(
        metric=found.key, name_zh=found.zh, code=node.code, as_of=on, total=total, page=page,
        page_size=page_size, items=[ShortfallItem(record=record.model_dump(mode="json"),
                                                  reasons=reasons) for record, reasons in items])


def set_baseline(vault: Vault, code: str, metric: str, data: BaselineIn | None) -> None:
    """Record a survey's count for a node's metric (``None``: remove it)."""
    if data is None:
        vault.metrics.set_baseline(code, metric, count=None, surveyed_on=vault.clock.today())
    else:
        vault.metrics.set_baseline(code, metric, count=data.count, surveyed_on=data.surveyed_on)


def trend(vault: Vault, *, at: str | None, start: date, end: date) -> list[TrendPoint]:
    """The node's metrics at each month end from ``start`` to ``end`` (and ``end`` itself)."""
    store = vault.metrics
    node = store.node(at)
    store.require_read(node)
    first = store.first_day()
    if first is not None and end >= first > start:
        start = first  # before the first record there is nothing to count
    points, keys = [], []
    for day in month_ends(start, end):
        inherited = _inherited(vault, node.code, day)
        for counts in store.count(node, day, depth=0, audit=False):
            [row] = _rows(counts, node.code, node.name, {},
                          inherited.get(counts.metric.key, {}))[:1]
            points.append(TrendPoint(as_of=day, metric=row.metric, name_zh=row.name_zh,
                                     rate=row.rate, target=row.target))
            keys.append(row.metric)
    store.audit_read(node, sorted(set(keys)), f"trend={start}..{end}")
    return points


def chart(vault: Vault, metric: str, *, at: str | None, as_of: date | None) -> str:
    """One metric's rate against target for each child of the node, as SVG."""
    node = vault.metrics.node(at)
    vault.metrics.metric(metric, node)
    return chart_svg(report(vault, at=node.code, as_of=as_of), metric)


def month_ends(start: date, end: date) -> list[date]:
    days, day = [], start
    while True:
        following = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        last = following - timedelta(days=1)
        if last >= end:
            days.append(end)
            return days
        days.append(last)
        day = following


def _rows(counts: Counts, code: str, name: str, children: dict[str, str],
          inherited: dict[int, str] | None = None) -> list[MetricRow]:
    """The node's row and its children's; ``inherited``: the node's own cells (by column)
    that a report higher up hides."""
    metric = counts.metric
    parts = {c: counts.buckets.get(c) for c in children}
    if code in counts.buckets and children:  # filed on the node itself, not in a child
        parts[code] = counts.buckets[code]
    total = _sum(counts.buckets.values(), metric)
    cells = [(code, name, total)] + [
        (c, children.get(c, "本级直接登记 filed at this level"), p or _zero(metric))
        for c, p in parts.items()]
    shown = [(c, n, *ratio(metric, p)) for c, n, p in cells]
    # Surveys raise denominators where they counted more than the registry holds.
    surveyed = set()
    for i, (c, n, num, den) in enumerate(shown):
        added = (sum(counts.extra.values()) + counts.node_extra if i == 0
                 else counts.extra.get(c, 0) if c != code else 0)
        if added:
            shown[i] = (c, n, num, den + added)
            surveyed.add(i)
    hidden = (_suppressed(shown, inherited or {}) if metric.about_people and not counts.exact
              else {})
    out = []
    for index, (c, n, num, den) in enumerate(shown):
        row = _row(metric, c, n, num, den, is_node=index == 0,
                   num_label=hidden.get((index, 2)), den_label=hidden.get((index, 3)))
        if index in surveyed:
            row.note = "分母采用入户普查基数 (denominator from a door-to-door survey)"
        out.append(row)
    return out


def _zero(metric) -> tuple[int, ...]:
    return (0, 0, 0) if metric.key == "coordinator_staffing" else (0, 0)


def _sum(parts, metric) -> tuple[int, ...]:
    total = list(_zero(metric))
    for p in parts:
        for i, value in enumerate(p):
            total[i] += value
    return tuple(total)


def _suppressed(shown: list[tuple], inherited: dict[int, str]) -> dict[tuple[int, int], str]:
    """(row, column) → its label, for the cells to hide: small counts (``<5``), then, among
    the children, complements (``*``) until parent minus the shown siblings pins none of the
    hidden ones down. Where the node's own cell is hidden (``inherited`` from the report
    above), every child's cell of that column is hidden too: the children would add up to it."""
    hidden = {}
    for column in (2, 3):
        for i, row in enumerate(shown):
            if 0 < row[column] < SMALL:
                hidden[(i, column)] = HIDDEN
        if column in inherited:
            hidden[(0, column)] = inherited[column]
            for i in range(1, len(shown)):
                if shown[i][column] > 0:
                    hidden.setdefault((i, column), COMPLEMENT)
            continue
        children = [i for i in range(1, len(shown)) if shown[i][column] > 0]
        held = [i for i in children if (i, column) in hidden]
        spare = sorted((i for i in children if (i, column) not in hidden),
                       key=lambda i: shown[i][column])
        while held and spare and _pinned([shown[i][column] for i in held],
                                         any(hidden[(i, column)] == COMPLEMENT for i in held)):
            i = spare.pop(0)
            hidden[(i, column)] = COMPLEMENT
            held.append(i)
    return hidden


def _pinned(values: list[int], complemented: bool) -> bool:
    """Whether parent minus the shown siblings still fixes hidden cells of these values: one
    cell alone, or only "<5" cells (1–4 each) whose sum is their least or most possible."""
    if len(values) < 2:
        return True
    if complemented:
        return False
    return not len(values) < sum(values) < (SMALL - 1) * len(values)


def _row(metric, code: str, name: str, num: int, den: int, *, is_node: bool,
         num_label: str | None, den_label: str | None) -> MetricRow:
    hidden = num_label is not None or den_label is not None
    rate = num / den if den else None
    target = metric.target
    met = gap = None
    if rate is not None and target is not None:
        met = rate >= target - 1e-12
        gap = max(0, math.ceil(target * den - 1e-9) - num)
    note = "" if den else "不适用：分母为0 (not applicable: nothing to count)"
    return MetricRow(
        metric=metric.key, name_zh=metric.zh, name_en=metric.en, code=code, name=name,
        node=is_node, numerator=num if num_label is None else num_label,
        denominator=den if den_label is None else den_label,
        rate=None if hidden else rate, target=target, met=None if hidden else met,
        gap=None if hidden else gap, suppressed=hidden, note=note)
