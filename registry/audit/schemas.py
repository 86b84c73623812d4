from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from registry.schemas import Day, IdNumberText, Printable, Strict


class EventFilter(BaseModel):
    actor: Printable | None = None
    kind: Printable | None = None
    record_id: Printable | None = Field(default=None,
                                  description="a record id; also matches list and search "
                                              "events that returned the record")
    outcome: Printable | None = None
    since: datetime | None = None
    until: datetime | None = None


class EventRead(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_id: uuid.UUID | None
    role: str
    action: str
    kind: str
    record_id: str | None
    jurisdiction_code: str | None
    fields: list[str]
    refs: list[str]
    purpose: str | None
    outcome: str
    detail: str
    request_id: str | None
    hash: str


class ArchivedSegment(BaseModel):
    """Events moved out of the database into an archive file, as its anchor records it."""

    first_seq: int
    last_seq: int
    file: str


class VerificationRead(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    broken_seq: int | None
    reason: str | None
    checkpoints: int = 0  # signed checkpoints checked against the log
    checkpoint_problems: list[str] = []
    first_seq: int = 1  # where the online chain starts; the events before it are archived
    archived: list[ArchivedSegment] = []
    archives_checked: list[ArchivedSegment] = []  # archive files given, walked and joined up
    archive_problems: list[str] = []

    def describe(self) -> str:
        """One line, as ``registry audit verify`` prints it when all holds."""
        online = (f"verified events {self.first_seq}..{self.head_seq}" if self.archived
                  else f"{self.checked} events, head at {self.head_seq}")
        archived = "".join(f"; events {a.first_seq}..{a.last_seq} archived in {a.file}"
                           for a in self.archived)
        checked = "".join(f"; archive {a.file} verified (events {a.first_seq}..{a.last_seq}, "
                          "joined to the chain)" for a in self.archives_checked)
        return (f"audit chain intact: {online}{archived}{checked}; "
                f"{self.checkpoints} signed checkpoints hold")


class ArchivePlan(BaseModel):
    """What ``registry audit archive`` would move now: the events of the online chain from
    ``first_seq`` to the last signed checkpoint before the first event still in its online
    period (``last_seq``; None when no such checkpoint lies past the start)."""

    cutoff: datetime  # events before this are past their online period
    past: int  # online events older than the cutoff
    first_seq: int
    last_seq: int | None
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def events(self) -> int:
        return 0 if self.last_seq is None else self.last_seq - self.first_seq + 1


class ArchiveRead(BaseModel):
    """One archive made: the file and the segment it holds; the online chain now starts at
    ``last_seq`` + 1."""

    archive_id: str
    file: str
    first_seq: int
    last_seq: int
    events: int
    first_at: datetime
    last_at: datetime
    reused: bool = False  # the file of an earlier run that stopped before its delete committed


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class Period(BaseModel):
    """Days in the registry's time zone, both included."""

    start: date
    end: date


class DisclosureQuery(Strict):
    """Whose disclosure report: a person id, or a national ID number (in a body, never a
    URL), resolved inside the gate; optionally within a period."""

    person_id: uuid.UUID | None = None
    id_number: IdNumberText | None = None
    start: Day | None = Field(default=None, alias="from")
    end: Day | None = Field(default=None, alias="to")


class AuditRow(BaseModel):
    """One event as the reports list it: who, when, what, why — never a value."""

    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    kind: str
    record_id: str | None
    jurisdiction_code: str | None
    fields: list[str]
    purpose: str | None
    outcome: str
    detail: str
    # The disclosure report: which of the person's records the event touched.
    touched: list[str] = []


class UserGroup(BaseModel):
    actor: str
    role: str
    count: int
    seqs: list[int]


class AuditReport(BaseModel):
    """An auditor's report: the events (newest first, at most the configured number; the
    counts cover all of them), counted per action, kind, outcome and actor."""

    report: str
    subject: str | None = None  # "person:<id>", "user:<name>"
    period: Period | None = None
    total: int
    truncated: bool
    counts: dict[str, dict[str, int]]
    groups: list[UserGroup] = []  # denied attempts: per user
    events: list[AuditRow]


class ReviewRead(BaseModel):
    note: str
    reviewed_by: str
    reviewed_at: datetime


class AnomalyItem(BaseModel):
    """A user whose period looks wrong by one rule, with the figures that tripped it and the
    events behind it."""

    id: str
    rule: str
    actor: str
    actor_id: uuid.UUID
    role: str
    figures: dict[str, float | int]
    seqs: list[int]
    review: ReviewRead | None = None


class AnomalyReport(BaseModel):
    period: Period
    thresholds: dict[str, float | int]
    items: list[AnomalyItem]


class ReviewIn(Strict):
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
