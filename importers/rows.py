"""Ledger rows of the smaller registers, one at a time, through the services the API calls.

A row that matches nothing in the caller's area (:mod:`registry.vault.ledgers` finds it) is
created exactly as the API creates it. One that matches and says the same is *unchanged*; one
that says something else is rejected naming the fields — or, with ``update``, written through
the registers' own operations (amend, pledge, report, check-in, placement), each audited as from
the API. Fields that identify a record or its history never change by import. Every row runs in
a savepoint (:meth:`Vault.attempt`), so a rejected row leaves nothing behind.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from importers.columns import Kind
from importers.kinds import Parsed, ledger_error
from registry.coordinators import service as coordinators
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseUpdate, CheckInIn, ReportIn
from registry.errors import Conflict, RegistryError
from registry.releases import service as releases
from registry.releases.schemas import ReleaseUpdate
from registry.rentals import service as rentals
from registry.rentals.schemas import Deregistration, PledgeIn, RentalStatus, RentalUpdate
from registry.vault.bulk import Outcome, differs_error
from registry.vault.gate import Vault
from registry.vault.ledgers import Match


def differences(given: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The fields the row gives (not blank) that differ from the registry's."""
    return [k for k, value in given.items() if value is not None and value != stored.get(k)]


class RowImport:
    """One import of a ledger whose rows go through the gate one by one."""

    kind: Kind
    what, what_zh = "record", "记录"
    fixed: tuple[str, ...] = ()  # fields that identify a record or its history

    def __init__(self, vault: Vault, *, update: bool) -> None:
        self.vault = vault
        self.update = update

    def run(self, rows: list[tuple[int, Parsed]]) -> dict[int, Outcome]:
        out = {}
        for number, parsed in rows:
            try:
                out[number] = self.vault.attempt(lambda p=parsed: self.one(p))
            except RegistryError as exc:
                out[number] = Outcome("rejected", error=ledger_error(self.kind, exc, number))
        return out

    def committed(self) -> None:
        pass

    def rolled_back(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def one(self, parsed: Parsed) -> Outcome:
        """Create the record the row describes, or compare it with ``self.match``."""
        raise NotImplementedError

    def changes(self, match: Match, given: dict[str, Any]) -> list[str]:
        """The fields to update; empty when the row says what the registry says. Without
        ``update`` any difference is a rejection naming the fields."""
        differs = differences(given, match.stored)
        if differs and not self.update:
            raise differs_error(differs, self.what, self.what_zh)
        frozen = [f for f in differs if f in self.fixed]
        if frozen:
            raise Conflict(f"{', '.join(frozen)} cannot be changed by an import: correct the "
                           "record in the registry", f"{'、'.join(frozen)}不能通过导入修改，"
                           "请在系统中更正", field=frozen[0])
        return differs


class JurisdictionImport(RowImport):
    kind = Kind.jurisdictions
    what, what_zh = "jurisdiction", "辖区"
    fixed = ("parent_code",)

    def one(self, parsed: Parsed) -> Outcome:
        r, jurisdictions = parsed.request, self.vault.jurisdictions
        # A division code names its parent: a blank parent column is no error.
        parent = r.parent_code or (r.code[:-3] if len(r.code) > 6 else None)
        match = self.vault.ledgers.jurisdiction(r.code)
        todo = ["name", "registration_deadline_days"] if match is None else self.changes(
            match, {**r.model_dump(exclude={"code"}), "parent_code": parent})
        if "name" in todo:
            jurisdictions.upsert([(r.code, r.name, parent)])
        if "registration_deadline_days" in todo and r.registration_deadline_days is not None:
            jurisdictions.set_deadline(r.code, r.registration_deadline_days)
        return _outcome(match, todo, [f"jurisdiction:{r.code}"])


class RentalImport(RowImport):
    kind = Kind.rentals
    what, what_zh = "rental", "出租房屋"
    fixed = ("registered_on",)

    def one(self, parsed: Parsed) -> Outcome:
        r, vault = parsed.request, self.vault
        vault.jurisdictions.require_writable(r.jurisdiction_code, vault.rentals.kind)
        match = vault.ledgers.rental(r.jurisdiction_code, r.address)
        if match is None:
            ends = r.status == RentalStatus.deregistered  # a ledger keeps let-go rentals too
            read = rentals.register(vault, r.model_copy(update={"status": RentalStatus.vacant})
                                    if ends else r)
            if ends:
                rentals.deregister(vault, read.id, Deregistration())
            return Outcome("imported", [f"rental:{read.id}", f"person:{read.landlord.id}"])
        pledge = r.pledge
        todo = set(self.changes(match, {
            "units": r.units, "status": r.status.value, "registered_on": r.registered_on,
            "landlord_name": r.landlord.name, "landlord_id_number": r.landlord.id_number,
            "landlord_phone": r.landlord.phone,
            "pledge_signed_on": pledge.signed_on if pledge else None,
            "pledge_valid_until": pledge.valid_until if pledge else None}))
        change: dict[str, Any] = {}
        if "units" in todo:
            change["units"] = r.units
        if "status" in todo and r.status != RentalStatus.deregistered:
            change["status"] = r.status
        if todo & {"landlord_name", "landlord_id_number"}:
            change["landlord"] = r.landlord
        elif "landlord_phone" in todo:
            change["landlord_phone"] = r.landlord.phone
        if change:
            rentals.amend(vault, match.id, RentalUpdate(**change))
        if todo & {"pledge_signed_on", "pledge_valid_until"}:
            rentals.sign_pledge(vault, match.id, PledgeIn(signed_on=pledge.signed_on,
                                                          valid_until=pledge.valid_until))
        if "status" in todo and r.status == RentalStatus.deregistered:
            rentals.deregister(vault, match.id, Deregistration())
        return _outcome(match, todo, match.refs)


class CorrectionsImport(RowImport):
    kind = Kind.corrections
    what, what_zh = "corrections case", "社区矫正案件"
    fixed = ("name", "category", "deciding_body", "effective_on", "supervision_start",
             "juvenile")

    def one(self, parsed: Parsed) -> Outcome:
        r, last, vault = parsed.request, parsed.extra["last_check_in_on"], self.vault
        match = vault.ledgers.corrections_case(parsed.id_number, r.judgment_ref)
        if match is None:
            read = corrections.open_case(vault, r)
            if last is not None:
                self._check_in(read.id, last)
            return Outcome("imported", [f"corrections:{read.id}", f"person:{read.person.id}"])
        given = r.model_dump(include={
            "name", "deciding_body", "effective_on", "supervision_start", "supervision_end",
            "reported_on", "check_in_interval_days", "officer", "juvenile", "phone"})
        todo = self.changes(match, {**given, "category": r.category.value,
                                    "last_check_in_on": last})
        if "reported_on" in todo:
            if match.stored["reported_on"] is not None:
                raise Conflict("the report date is already recorded, differently",
                               "报到日期已登记且不一致", field="reported_on")
            corrections.record_report(vault, match.id, ReportIn(reported_on=r.reported_on),
                                      purpose=None)
        change = {f: given[f] for f in ("officer", "check_in_interval_days", "supervision_end",
                                        "phone") if f in todo}
        if change:
            corrections.amend(vault, match.id, CaseUpdate(**change), purpose=None)
        if "last_check_in_on" in todo:
            recorded = match.stored["last_check_in_on"]
            if recorded is not None and last < recorded:
                raise Conflict("is older than the last check-in recorded",
                               "早于已登记的最近报到日期", field="last_check_in_on")
            self._check_in(match.id, last)
        return _outcome(match, todo, match.refs)

    def _check_in(self, case_id, on) -> None:
        """A ledger's last check-in, recorded at noon that day (or now, if that is earlier)."""
        clock = self.vault.clock
        at = min(datetime.combine(on, time(12), tzinfo=clock.tz), clock.now())
        corrections.record_check_in(self.vault, case_id, CheckInIn(at=at), purpose=None)


class ReleaseImport(RowImport):
    kind = Kind.releases
    what, what_zh = "release case", "安置帮教案件"
    fixed = ("name", "source", "releasing_institution")

    def one(self, parsed: Parsed) -> Outcome:
        r, placement, vault = parsed.request, parsed.extra["placement"], self.vault
        match = vault.ledgers.release_case(parsed.id_number, r.released_on)
        if match is None:
            read = releases.register(vault, r)
            if placement is not None and placement.status != "not_yet":
                releases.place(vault, read.id, placement, purpose=None)
            return Outcome("imported", [f"release:{read.id}", f"person:{read.person.id}"])
        given = r.model_dump(include={"name", "releasing_institution", "key_subject",
                                      "measures_in_place", "phone"})
        todo = self.changes(match, {
            **given, "source": r.source.value,
            "placement_status": placement.status.value if placement else None,
            "placement_kind": placement.kind.value if placement and placement.kind else None})
        change = {f: given[f] for f in ("key_subject", "measures_in_place", "phone")
                  if f in todo}
        if change:
            releases.amend(vault, match.id, ReleaseUpdate(**change), purpose=None)
        if {"placement_status", "placement_kind"} & set(todo):
            releases.place(vault, match.id, placement, purpose=None)
        return _outcome(match, todo, match.refs)


class CoordinatorImport(RowImport):
    kind = Kind.coordinators
    what, what_zh = "coordinator", "协管员"

    def one(self, parsed: Parsed) -> Outcome:
        data = coordinators.clean(parsed.request)
        match = self.vault.ledgers.coordinator(data.staff_number)
        if match is None:
            read = coordinators.add(self.vault, data)
            return Outcome("imported", [f"coordinator:{read.id}"])
        given = data.model_dump(include={"name", "jurisdiction_code", "phone"})
        todo = self.changes(match, given)
        if todo:
            coordinators.change(self.vault, match.id, {f: given[f] for f in todo})
        return _outcome(match, todo, match.refs)


def _outcome(match: Match | None, todo, refs: list[str]) -> Outcome:
    if match is None:
        return Outcome("imported", refs)
    return Outcome("updated" if todo else "unchanged", refs)
