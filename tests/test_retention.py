"""Retention: the plan names what the rules say must go (and what a legal hold keeps); apply
erases it by crypto-shredding — rows deleted, data keys destroyed, tombstones left, ended
corrections cases archived read-only — and, on an on-disk registry, no copy of a shredded key
is left in the database's or the keystore's files."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate, CheckInIn, StatusChange
from registry.db import keystore_file
from registry.errors import Conflict, Invalid, NotFound
from registry.models import (
    AuditEvent,
    CorrectionsCase,
    DataKey,
    Erasure,
    Person,
    Pledge,
    RentalProperty,
    Residency,
)
from registry.releases import service as releases
from registry.releases.schemas import ReleaseCreate
from registry.rentals import service as rentals
from registry.rentals.schemas import Deregistration, RentalCreate
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn, MoveOut, ResidentSearch
from registry.vault.accounts import system_actor
from registry.vault.runtime import Registry
from tests.conftest import COUNTY, GRID_A1, TREE, Disk, id_number, make_user, rental_body
from tests.conftest import test_settings as make_settings

OPERATOR = system_actor("tests")
PURPOSE = "retention test"
LATER = date(2030, 1, 1)  # residencies and rentals ended in 2026 are due in 2029
MUCH_LATER = date(2033, 1, 1)  # aftercare (2026-2031) + one year is due in 2032


def arrival(seed: int, **dates) -> dict:
    return {"name": f"李{seed}华", "id_number": id_number(seed), "reason": "work",
            "arrived_on": "2026-05-01", "registered_on": "2026-05-03",
            "jurisdiction_code": GRID_A1, "address": f"东门路{seed}号",
            "phone": f"1390013{seed:04d}", **dates}


def case(seed: int) -> dict:
    return {"name": f"张{seed}强", "id_number": id_number(seed), "jurisdiction_code": GRID_A1,
            "category": "probation", "deciding_body": "测试县人民法院",
            "judgment_ref": f"（2026）测刑初{seed}号", "effective_on": "2026-05-01",
            "supervision_start": "2026-05-01", "supervision_end": "2027-05-01",
            "reported_on": "2026-05-05"}


def release(seed: int) -> dict:
    return {"name": f"陈{seed}伟", "id_number": id_number(seed), "jurisdiction_code": GRID_A1,
            "source": "prison", "released_on": "2026-04-01",
            "releasing_institution": "测试省第一监狱"}


@pytest.fixture
def county(registry, client):
    """Four people: A left (resident), B a landlord whose rental was deregistered and whose
    corrections case ended, C a released person in aftercare, D a resident still here."""
    police = make_user(registry, None, "police", COUNTY).actor
    officer = make_user(registry, None, "corrections", COUNTY).actor
    justice = make_user(registry, None, "justice", COUNTY).actor
    ids = {}
    with registry.vault(police) as vault:
        a = residents.register_arrival(vault, ArrivalIn(**arrival(1)), purpose=PURPOSE)
        residents.move_out(vault, a.id, MoveOut(left_on="2026-06-01"), purpose=PURPOSE)
        b = rentals.register(vault, RentalCreate(**rental_body(2)), purpose=PURPOSE)
        rentals.deregister(vault, b.id, Deregistration(deregistered_on="2026-06-10"),
                           purpose=PURPOSE)
        d = residents.register_arrival(vault, ArrivalIn(**arrival(4)), purpose=PURPOSE)
        vault.commit()
    with registry.vault(officer) as vault:
        k = corrections.open_case(vault, CaseCreate(**{**case(2), "name": "王二明"}),
                                  purpose=PURPOSE)
        ended = StatusChange(status="ended", on="2026-06-10", reason="期满")
        corrections.change_status(vault, k.id, ended, purpose=PURPOSE)
        vault.commit()
    with registry.vault(justice) as vault:
        c = releases.register(vault, ReleaseCreate(**release(3)), purpose=PURPOSE)
        vault.commit()
    with registry.db.session() as session:
        persons = {row.id: row for row in session.scalars(select(Person))}
        by_record = {a.id: Residency, b.id: RentalProperty, d.id: Residency}
        for record_id, model in by_record.items():
            row = session.get(model, record_id)
            ids[record_id] = getattr(row, "person_id", None) or row.landlord_id
    ids.update(resident=a.id, rental=b.id, case=k.id, release=c.id, staying=d.id,
               police=police, officer=officer, justice=justice, persons=set(persons))
    return ids


def plan(registry: Registry, day: date):
    with registry.vault(OPERATOR) as vault:
        items = vault.retention.plan(day)
        vault.commit()
    return {(i.kind, i.record_id): i for i in items}


def apply(registry: Registry, day: date, limit: int = 1000) -> dict:
    """What `registry retention apply` does: batches, each followed by the shredding of its
    keys once its rows are gone."""
    done = {}
    while True:
        with registry.vault(OPERATOR) as vault:
            batch = vault.retention.apply(day, limit)
            vault.commit()
        with registry.vault(OPERATOR) as vault:
            vault.retention.shred()
            vault.commit()
        if not batch:
            return done
        for key, n in batch.items():
            done[key] = done.get(key, 0) + n


def test_the_plan_follows_the_rules_and_the_dates(registry, county):
    a_person = county[county["resident"]]
    b_person = county[county["rental"]]
    items = plan(registry, LATER)
    assert set(items) == {("resident", county["resident"]), ("rental", county["rental"]),
                          ("corrections", county["case"]), ("person", a_person)}
    assert items[("resident", county["resident"])].rule == "resident_left"
    assert items[("resident", county["resident"])].due_on == date(2029, 6, 1)
    assert items[("corrections", county["case"])].action == "archive"
    # B keeps a (corrections) record, so B stays; C's aftercare has not ended a year ago yet.
    assert ("person", b_person) not in items
    assert ("release", county["release"]) in plan(registry, MUCH_LATER)
    # An ended corrections case is archived at once (0 years by default); nothing else is due.
    assert set(plan(registry, date(2026, 6, 15))) == {("corrections", county["case"])}
    with registry.db.session() as session:
        action, detail = session.execute(
            select(AuditEvent.action, AuditEvent.detail).where(AuditEvent.kind == "retention")
            .order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert (action, detail) == ("plan", "as_of=2026-06-15;corrections:archive=1")


def test_apply_shreds_keys_deletes_rows_and_leaves_tombstones(registry, county):
    a_person = county[county["resident"]]
    with registry.db.session() as session:
        keys = {session.get(Residency, county["resident"]).key_id,
                session.get(RentalProperty, county["rental"]).key_id,
                session.get(Person, a_person).key_id}
    # Interrupted between the erasure's commit and the shredding: the rows and their
    # tombstones are gone and written, the keys still live — the next run destroys them.
    with registry.vault(OPERATOR) as vault:
        first = vault.retention.apply(LATER, 1000)
        vault.commit()
    assert first == {("resident", "erase"): 1, ("rental", "erase"): 1,
                     ("person", "erase"): 1, ("corrections", "archive"): 1}
    with registry.db.session() as session:
        assert session.get(Residency, county["resident"]) is None
        assert session.scalar(select(func.count()).select_from(DataKey).where(
            DataKey.id.in_(keys), DataKey.wrapped.is_not(None))) == 3
    done = apply(registry, LATER)
    assert done == {}  # nothing left to erase: the run only destroyed the keys
    with registry.db.session() as session:
        assert session.get(Residency, county["resident"]) is None
        assert session.get(RentalProperty, county["rental"]) is None
        assert session.scalar(select(func.count()).select_from(Pledge).where(
            Pledge.rental_id == county["rental"])) == 0
        assert session.get(Person, a_person) is None
        assert session.get(Person, county[county["rental"]]) is not None  # B: a case left
        shredded = session.scalars(select(DataKey).where(DataKey.id.in_(keys))).all()
        assert len(shredded) == 3
        assert all(k.wrapped is None and k.destroyed_at is not None for k in shredded)
        tombstones = session.scalars(select(Erasure)).all()
        assert {(t.kind, t.record_id, t.rule) for t in tombstones} == {
            ("resident", county["resident"], "resident_left"),
            ("rental", county["rental"], "rental_deregistered"),
            ("person", a_person, "person_unreferenced")}
        assert session.get(CorrectionsCase, county["case"]).archived_on == LATER
        erasures = session.execute(select(AuditEvent.kind, AuditEvent.record_id).where(
            AuditEvent.action.in_(["erase", "archive"]))).all()
    assert set(erasures) == {
        ("resident", str(county["resident"])), ("rental", str(county["rental"])),
        ("person", str(a_person)), ("corrections", str(county["case"]))}
    assert apply(registry, LATER) == {}  # done: running it again finds nothing
    # The erased resident is gone from searches; the archived case reads but refuses writes.
    with registry.vault(county["police"]) as vault:
        found = residents.search(vault, ResidentSearch(id_number=id_number(1)),
                                 purpose=PURPOSE)
        assert found == []
    with registry.vault(county["officer"]) as vault:
        assert corrections.get(vault, county["case"], purpose=PURPOSE).id == county["case"]
        with pytest.raises(Conflict, match="archived"):
            corrections.record_check_in(vault, county["case"], CheckInIn(method="in_person"),
                                        purpose=PURPOSE)


def test_a_legal_hold_keeps_a_person_and_their_records_until_lifted(registry, county):
    a_person = county[county["resident"]]
    with registry.vault(OPERATOR) as vault:
        hold = vault.retention.hold("person", a_person, "（2029）测法保字第7号")
        vault.commit()
    with registry.db.session() as session:  # the audit log names the hold, not its text
        detail = session.scalar(select(AuditEvent.detail).where(
            AuditEvent.action == "hold", AuditEvent.record_id == str(hold.id)))
    assert "测法保字" not in (detail or "")
    items = plan(registry, LATER)
    assert items[("resident", county["resident"])].held == "（2029）测法保字第7号"
    assert ("person", a_person) not in items  # their held record keeps them
    done = apply(registry, LATER)
    assert ("resident", "erase") not in done and ("person", "erase") not in done
    assert done[("rental", "erase")] == 1
    with registry.vault(OPERATOR) as vault:
        vault.retention.lift(hold.id)
        vault.commit()
    assert apply(registry, LATER) == {("resident", "erase"): 1, ("person", "erase"): 1}


def test_a_hold_on_one_record_keeps_it_and_its_person(registry, county):
    a_person = county[county["resident"]]
    with registry.vault(OPERATOR) as vault:
        vault.retention.hold("resident", county["resident"], "ORDER-1")
        vault.commit()
    apply(registry, LATER)
    with registry.db.session() as session:
        assert session.get(Residency, county["resident"]) is not None
        assert session.get(Person, a_person) is not None


def test_small_batches_reach_the_same_end_and_never_orphan_a_record(registry, county):
    done = apply(registry, MUCH_LATER, limit=1)
    assert done == {("resident", "erase"): 1, ("rental", "erase"): 1,
                    ("release", "erase"): 1, ("person", "erase"): 2,
                    ("corrections", "archive"): 1}
    with registry.db.session() as session:
        persons = set(session.scalars(select(Person.id)))
    assert persons == county["persons"] - {county[county["resident"]],
                                           _release_person(registry, county)}


def _release_person(registry, county) -> uuid.UUID:
    with registry.db.session() as session:
        return session.scalar(select(Erasure.record_id).where(
            Erasure.kind == "person", Erasure.record_id != county[county["resident"]]))


def test_holds_refuse_bad_input_by_field(registry, county):
    with registry.vault(OPERATOR) as vault:
        with pytest.raises(Invalid) as bad_kind:
            vault.retention.hold("user", county["resident"], "ORDER-1")
        assert bad_kind.value.field == "kind"
        with pytest.raises(Invalid) as bad_reference:
            vault.retention.hold("resident", county["resident"], "  ")
        assert bad_reference.value.field == "reference"
        with pytest.raises(NotFound):
            vault.retention.hold("resident", uuid.uuid4(), "ORDER-1")
        with pytest.raises(NotFound):
            vault.retention.lift(uuid.uuid4())


def test_only_the_operator_applies_retention(registry, county):
    from registry.errors import Forbidden

    for actor in (county["police"], make_user(registry, None, "admin", COUNTY).actor):
        with registry.vault(actor) as vault, pytest.raises(Forbidden):
            vault.retention.apply(LATER, 10)


# --- on disk: nothing of a shredded key is left in the files -----------------------------


def test_after_apply_no_copy_of_a_shredded_key_is_left_in_the_files(disk: Disk):
    assert disk.run("init").returncode == 0
    registry = Registry(make_settings(disk.data, database_url=disk.url))
    with registry.vault(OPERATOR) as vault:
        vault.jurisdictions.upsert(TREE)
        vault.commit()
    police = make_user(registry, None, "police", COUNTY).actor
    with registry.vault(police) as vault:
        gone = residents.register_arrival(vault, ArrivalIn(**arrival(
            7, arrived_on="2020-01-01", registered_on="2020-01-02")), purpose=PURPOSE)
        residents.move_out(vault, gone.id, MoveOut(left_on="2021-01-01"), purpose=PURPOSE)
        stays = residents.register_arrival(vault, ArrivalIn(**arrival(8)), purpose=PURPOSE)
        vault.commit()
    secrets: list[bytes] = []
    with registry.db.session() as session:
        row = session.get(Residency, gone.id)
        person = session.get(Person, row.person_id)
        for key_id in (row.key_id, person.key_id):
            key = session.get(DataKey, key_id)
            dek = registry.keyring.provider.unwrap(key.kek_id, key.wrapped, aad=key_id.bytes)
            secrets += [bytes(key.wrapped), dek]
        # The sealed values themselves: without their key they are noise, and on SQLite
        # (secure_delete) they are zeroed too; PostgreSQL's vacuum frees, not zeroes, them.
        if disk.url.startswith("sqlite"):
            secrets += [bytes(row.name), bytes(row.phone), bytes(person.id_number)]
    registry.db.dispose()
    if not disk.url.startswith("sqlite"):
        # What autovacuum may do at any time: sample values of every column go into
        # pg_statistic (the migrations keep the wrapped keys out of it).
        engine = create_engine(disk.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()

    result = disk.run("retention", "apply", "--yes")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"person:erase": 1, "resident:erase": 1}

    files = _database_files(disk)
    assert files, "no database files found to check"
    for path in files:
        blob = path.read_bytes()
        found = [i for i, secret in enumerate(secrets) if secret in blob]
        assert found == [], f"{path.name}: secrets {found} survive the erasure"
    # The resident who stays still opens, from a fresh process.
    registry = Registry(make_settings(disk.data, database_url=disk.url))
    with registry.vault(police) as vault:
        assert residents.get(vault, stays.id, purpose=PURPOSE).person.name == "李8华"
        vault.commit()
    registry.db.dispose()


def _database_files(disk: Disk) -> list[Path]:
    if disk.url.startswith("sqlite"):
        main = Path(disk.url.removeprefix("sqlite:///"))
        keys = keystore_file(disk.url)
        for path in (main, keys):  # the registry is closed; fold in anything left
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        return [p for base in (main, keys) for p in (base, Path(f"{base}-wal")) if p.exists()]
    from tests.test_at_rest import _postgres_files

    _, files = _postgres_files(disk.url)
    return files


def test_a_record_whose_key_was_destroyed_answers_410_not_500(registry, client, county):
    """What a record brought back by an older data backup looks like once its key is gone:
    the API says so plainly (and `registry retention apply` erases it again)."""
    from sqlalchemy import update

    police = make_user(registry, client, "police", COUNTY)
    with registry.db.session() as session:
        key_id = session.get(Residency, county["staying"]).key_id
        session.execute(update(DataKey).where(DataKey.id == key_id).values(wrapped=None))
        session.commit()
    response = client.get(f"/residents/{county['staying']}", headers={
        **police.headers, "X-Purpose": "check"})
    assert response.status_code == 410, response.text
    assert response.json()["error"]["code"] == "unreadable"
