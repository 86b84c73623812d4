"""Rental properties, their landlords and pledges, behind the gate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update

from registry.errors import Conflict, Invalid
from registry.models import Pledge, RentalProperty, Residency
from registry.models._types import new_id
from registry.rentals.schemas import (
    PledgeRead,
    PledgeState,
    RentalRead,
    RentalStatus,
)
from registry.schemas import Page
from registry.security.authz import View
from registry.validation import IdNumber, address_key, mask_address, mask_name
from registry.vault.base import RENTAL, Store

TABLE = "rental_property"
PLEDGE_TABLE = "pledge"
GROUPS = ("address", "name", "id_number", "phone", "birth")


@dataclass(frozen=True)
class Landlord:
    id_number: IdNumber
    name: str
    phone: str | None


@dataclass(frozen=True)
class PledgeFacts:
    signed_on: date
    valid_until: date
    signed_by: str | None


def missing_facts(rental: RentalProperty) -> str:
    """The basic facts (registration-rate metric) a rental still lacks, comma-separated: the
    register's required fields are all required on entry but the landlord's phone."""
    return "landlord.phone" if rental.landlord_phone is None else ""


class RentalStore(Store):
    kind = RENTAL
    model = RentalProperty
    person_column = "landlord_id"

    # --- writes ----------------------------------------------------------------------------

    def register(
        self, *, jurisdiction_code: str, address: str, units: int, status: RentalStatus,
        registered_on: date, landlord: Landlord, pledge: PledgeFacts | None,
        purpose: str | None = None,
    ) -> RentalRead:
        vault = self.vault
        vault.require(RENTAL, "create")
        vault.jurisdictions.require_writable(jurisdiction_code, RENTAL)
        self._refuse_duplicate(jurisdiction_code, address)
        person = vault.persons.ensure(id_number=landlord.id_number, name=landlord.name,
                                      field="landlord.id_number")
        now = vault.clock.now()
        rental = RentalProperty(
            id=new_id(), key_id=vault.new_key(), jurisdiction_code=jurisdiction_code,
            status=status.value, status_since=registered_on, registered_on=registered_on,
            units=units, landlord_id=person.id,
            address_bidx=vault.blind_index(TABLE, "address", address_key(address)),
            created_by=vault.actor.id, created_at=now, updated_at=now,
        )
        rental.address = self.seal(rental, "address", address)
        rental.landlord_name = self.seal(rental, "landlord_name", landlord.name)
        _, touched = self._sync_landlord_phone(rental, landlord.phone)
        rental.missing = missing_facts(rental)
        self.session.add(rental)
        self.session.flush()  # the pledge refers to it; no ORM relationship orders the inserts
        fields = ["address", "units", "status", "landlord"]
        if pledge is not None:
            self._add_pledge(rental, pledge, signer_default=landlord.name)
            fields.append("pledge")
            self.session.flush()
        return self.respond(rental, "create", purpose=purpose, changed=fields, also=touched)

    def amend(
        self, rental_id: uuid.UUID, *, jurisdiction_code: str | None = None,
        address: str | None = None, units: int | None = None,
        status: RentalStatus | None = None, landlord: Landlord | None = None,
        landlord_phone: str | None = None, purpose: str | None = None,
    ) -> RentalRead:
        vault = self.vault
        rental = self.load(rental_id, "update")
        if rental.status == RentalStatus.deregistered:
            raise Conflict("a deregistered rental cannot be amended", "已注销的出租房屋不能修改")
        changed = []
        if jurisdiction_code is not None and jurisdiction_code != rental.jurisdiction_code:
            vault.jurisdictions.require_writable(jurisdiction_code, RENTAL, "update")
            rental.jurisdiction_code = jurisdiction_code
            changed.append("jurisdiction_code")
            # The people living there are filed where the rental is.
            self.session.execute(update(Residency).where(
                Residency.rental_id == rental.id, Residency.left_on.is_(None),
            ).values(jurisdiction_code=jurisdiction_code))
        if address is not None and address != self.open(rental, "address"):
            rental.address = vault.seal(rental.key_id, TABLE, "address", rental.id, address)
            rental.address_bidx = vault.blind_index(TABLE, "address", address_key(address))
            changed.append("address")
        if {"address", "jurisdiction_code"} & set(changed):
            self._refuse_duplicate(rental.jurisdiction_code,
                                   address or self.open(rental, "address"), but=rental.id)
        if units is not None and units != rental.units:
            rental.units = units
            changed.append("units")
        if status is not None and status != rental.status:
            if status == RentalStatus.deregistered:
                raise Invalid("use deregister to end a rental", "注销请使用注销操作",
                              field="status")
            rental.status = status.value
            rental.status_since = vault.clock.today()
            changed.append("status")
        if landlord is not None:
            person = vault.persons.ensure(id_number=landlord.id_number, name=landlord.name,
                                          field="landlord.id_number")
            if person.id != rental.landlord_id:
                rental.landlord_id = person.id
                rental.landlord_name = self.seal(rental, "landlord_name", landlord.name)
                rental.landlord_phone = rental.landlord_phone_bidx = None
                changed.append("landlord")
            landlord_phone = landlord.phone if landlord_phone is None else landlord_phone
        touched: list[str] = []
        if landlord_phone is not None or "landlord" in changed:
            changed_here, touched = self._sync_landlord_phone(rental, landlord_phone)
            if changed_here or touched:
                changed.append("landlord.phone")
        rental.missing = missing_facts(rental)
        rental.updated_at = vault.clock.now()
        self.session.flush()
        return self.respond(rental, "update", purpose=purpose, changed=changed, also=touched)

    def deregister(self, rental_id: uuid.UUID, *, on: date,
                   purpose: str | None = None) -> RentalRead:
        rental = self.load(rental_id, "deregister")
        if rental.status == RentalStatus.deregistered:
            raise Conflict("the rental is already deregistered", "该出租房屋已注销")
        living = self.session.scalar(select(func.count()).select_from(Residency).where(
            Residency.rental_id == rental.id, Residency.left_on.is_(None)))
        if living:
            raise Conflict(f"{living} resident(s) still registered here; record their move "
                           "first", f"仍有{living}名住户登记在此，请先办理迁出")
        if on < rental.registered_on:
            raise Invalid("is before the registration date", "早于登记日期",
                          field="deregistered_on")
        rental.status = RentalStatus.deregistered.value
        rental.status_since = rental.deregistered_on = on
        rental.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(rental, "deregister", purpose=purpose, changed=["status"])

    def sign_pledge(self, rental_id: uuid.UUID, pledge: PledgeFacts, *,
                    purpose: str | None = None) -> RentalRead:
        rental = self.load(rental_id, "pledge")
        if rental.status == RentalStatus.deregistered:
            raise Conflict("a deregistered rental takes no pledge",
                           "已注销的出租房屋不能签订保证书")
        self._add_pledge(rental, pledge,
                         signer_default=pledge.signed_by or self.open(rental, "landlord_name"))
        rental.updated_at = self.vault.clock.now()
        self.session.flush()
        return self.respond(rental, "pledge", purpose=purpose, changed=["pledge"])

    def _seal_phone(self, rental: RentalProperty, phone: str) -> None:
        rental.landlord_phone = self.seal(rental, "landlord_phone", phone)
        rental.landlord_phone_bidx = self.vault.blind_index(TABLE, "landlord_phone", phone)
        rental.missing = missing_facts(rental)

    def _sync_landlord_phone(self, rental: RentalProperty,
                             phone: str | None) -> tuple[bool, list[str]]:
        """One phone per landlord across the rentals the caller may see: a new number replaces
        the old on all of them; without one, ``rental`` takes the number already recorded.
        Returns whether ``rental``'s phone changed and the other rentals read or written, which
        the operation's audit event names too."""
        others = [r for r in self.session.scalars(select(RentalProperty).where(
            RentalProperty.landlord_id == rental.landlord_id,
            self.vault.scope_filter(RentalProperty.jurisdiction_code),
        ).order_by(RentalProperty.updated_at.desc())) if r.id != rental.id]
        touched = []
        if phone is None:
            source = next((r for r in others if r.landlord_phone is not None), None)
            if source is None:
                return False, []
            phone = self.open(source, "landlord_phone")
            touched.append(f"rental:{source.id}")
        for other in others:
            if self.open(other, "landlord_phone") != phone:
                self._seal_phone(other, phone)
                touched.append(f"rental:{other.id}")
        changed = self.open(rental, "landlord_phone") != phone
        if changed:
            self._seal_phone(rental, phone)
        return changed, sorted(set(touched))

    def _add_pledge(self, rental: RentalProperty, pledge: PledgeFacts, *,
                    signer_default: str) -> None:
        pledge_id = new_id()
        signer = pledge.signed_by or signer_default
        self.session.add(Pledge(
            id=pledge_id, rental_id=rental.id, signed_on=pledge.signed_on,
            valid_until=pledge.valid_until, recorded_by=self.vault.actor.id,
            recorded_at=self.vault.clock.now(),
            signed_by=self.vault.seal(rental.key_id, PLEDGE_TABLE, "signed_by", pledge_id,
                                      signer),
        ))
        if rental.pledge_signed_on is None or pledge.signed_on >= rental.pledge_signed_on:
            rental.pledge_signed_on = pledge.signed_on
            rental.pledge_valid_until = pledge.valid_until

    def _refuse_duplicate(self, code: str, address: str, but: uuid.UUID | None = None) -> None:
        """One live registration per address within a jurisdiction node (always in the
        caller's scope, so the conflict leaks nothing they could not see)."""
        other = self.at_address(code, address, but=but)
        if other is not None:
            raise Conflict("a rental at this address is already registered here",
                           "该地址的出租房屋已在本辖区登记", field="address",
                           extra={"existing_id": str(other.id)})

    def at_address(self, code: str, address: str, *, but: uuid.UUID | None = None,
                   live: bool = True) -> RentalProperty | None:
        """The live rental at ``address`` in node ``code`` (the caller checked the scope);
        with ``live=False`` a deregistered one too, the live one first, then the latest."""
        buckets = self.vault.blind_indexes(TABLE, "address", address_key(address))
        where = [RentalProperty.jurisdiction_code == code,
                 RentalProperty.address_bidx.in_(buckets)]
        if live:
            where.append(RentalProperty.status != RentalStatus.deregistered.value)
        candidates = sorted(self.session.scalars(select(RentalProperty).where(*where)).all(),
                            key=lambda r: (r.status == RentalStatus.deregistered,
                                           -r.registered_on.toordinal()))
        self.vault.load_keys(r.key_id for r in candidates)
        wanted = address_key(address)
        return next((other for other in candidates if other.id != but and address_key(
            self.vault.open(other.address, TABLE, "address", other.id)) == wanted), None)

    # --- reads -----------------------------------------------------------------------------

    def list(self, *, jurisdiction: str | None, status: RentalStatus | None,
             pledge_state: PledgeState | None, page: int, page_size: int,
             purpose: str | None = None) -> Page[RentalRead]:
        vault = self.vault
        vault.require(RENTAL, "list")
        where = self.scoped()
        if jurisdiction:
            where.append(vault.jurisdictions.narrow(RentalProperty.jurisdiction_code,
                                                    jurisdiction))
        if status:
            where.append(RentalProperty.status == status.value)
        if pledge_state:
            where.append(_pledge_clause(pledge_state, vault.clock.today()))
        total = self.session.scalar(select(func.count()).select_from(RentalProperty)
                                    .where(*where))
        rows = self.session.scalars(
            select(RentalProperty).where(*where)
            .order_by(RentalProperty.registered_on.desc(), RentalProperty.id.desc())
            .offset((page - 1) * page_size).limit(page_size)
        ).all()
        items = self.listing(rows, "list", purpose=purpose, detail=f"page={page};total={total}")
        return Page(items=items, total=total or 0, page=page, page_size=page_size)

    def search(self, *, id_number: IdNumber | None, phone: str | None,
               purpose: str | None = None) -> list[RentalRead]:
        vault = self.vault
        vault.require(RENTAL, "search")
        if id_number is not None:
            person = vault.persons.find(id_number)
            match = RentalProperty.landlord_id == (person.id if person else None)
            by = "landlord.id_number"
        else:
            match = RentalProperty.landlord_phone_bidx.in_(vault.blind_indexes(
                TABLE, "landlord_phone", phone))
            by = "landlord.phone"
        rows = self.session.scalars(
            select(RentalProperty)
            .where(match, *self.scoped())
            .order_by(RentalProperty.registered_on.desc()).limit(200)).all()
        if phone is not None:  # the index is truncated: confirm each candidate
            vault.load_keys(r.key_id for r in rows)
            rows = [r for r in rows if self.open(r, "landlord_phone") == phone]
        return self.listing(rows, "search", purpose=purpose, detail=f"by={by}")

    def refs(self, row: RentalProperty) -> list[str]:
        return [f"rental:{row.id}", f"person:{row.landlord_id}"]

    def views(self, rentals, purpose: str | None, *,
              history: bool = False) -> list[tuple[RentalRead, list[str]]]:
        if not rentals:
            return []
        vault = self.vault
        views = vault.views(RENTAL, GROUPS, purpose)
        people = vault.persons.by_id(r.landlord_id for r in rentals)
        pledges: dict[uuid.UUID, Pledge] = {}
        if views["name"] is not View.hidden:
            for pledge in self.session.scalars(
                select(Pledge).where(Pledge.rental_id.in_([r.id for r in rentals]))
                .order_by(Pledge.signed_on, Pledge.recorded_at)
            ):
                pledges[pledge.rental_id] = pledge
        vault.load_keys(r.key_id for r in rentals)
        today = vault.clock.today()
        result = []
        for rental in rentals:
            landlord, person_fields = vault.persons.view(
                people[rental.landlord_id], views,
                name=self.open(rental, "landlord_name") if views["name"] else None,
                phone=self.open(rental, "landlord_phone") if views["phone"] else None)
            fields = [f"landlord.{f}" for f in person_fields]
            address = None
            if views["address"] is not View.hidden:
                address = vault.open(rental.address, TABLE, "address", rental.id)
                if views["address"] is View.masked:
                    address = mask_address(address)
                fields.append("address" if views["address"] is View.clear else "address~masked")
            pledge = None
            if rental.pledge_signed_on is not None:
                signer = None
                stored = pledges.get(rental.id)
                if stored is not None and views["name"] is not View.hidden:
                    signer = vault.open(stored.signed_by, PLEDGE_TABLE, "signed_by", stored.id)
                    if views["name"] is View.masked:
                        signer = mask_name(signer)
                    fields.append("pledge.signed_by" + (
                        "" if views["name"] is View.clear else "~masked"))
                pledge = PledgeRead(signed_on=rental.pledge_signed_on,
                                    valid_until=rental.pledge_valid_until, signed_by=signer)
            missing = [m for m in rental.missing.split(",") if m]
            result.append((RentalRead(
                id=rental.id, jurisdiction_code=rental.jurisdiction_code,
                status=rental.status, status_since=rental.status_since,
                registered_on=rental.registered_on, deregistered_on=rental.deregistered_on,
                units=rental.units, address=address, landlord=landlord, pledge=pledge,
                pledge_state=_pledge_state(rental.pledge_valid_until, today), missing=missing,
                masked=sorted(g for g, v in views.items() if v is View.masked),
                hidden=sorted(g for g, v in views.items() if v is View.hidden),
            ), fields))
        return result


def _pledge_state(valid_until: date | None, today: date) -> PledgeState:
    if valid_until is None:
        return PledgeState.missing
    return PledgeState.valid if valid_until >= today else PledgeState.expired


def _pledge_clause(state: PledgeState, today: date):
    column = RentalProperty.pledge_valid_until
    if state is PledgeState.missing:
        return column.is_(None)
    return column >= today if state is PledgeState.valid else column < today
