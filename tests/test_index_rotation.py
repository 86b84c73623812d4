"""Blind-index key rotation (registry/vault/indexadmin.py, ``registry keys rotate-index``): a new
index-root version, every blind index rebuilt under it batch by batch, lookups that find every
record before, during and after the rebuild (by ID number, phone and address), uniqueness that
holds throughout (a rental's address, a person's ID number, the bulk importer's index), a
resumed rebuild, the old version retired, a fresh process that still finds everything and
still verifies the audit checkpoints, and a foreign key file still refused."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.api import create_app
from registry.clock import Clock
from registry.errors import Conflict, Forbidden, SetupError
from registry.models import KeyCheck, Person, RentalProperty, Residency
from registry.rentals import service as rentals
from registry.rentals.schemas import RentalCreate, RentalSearch
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn, ResidentSearch
from registry.security.crypto import KEYFILE_FORMAT, LocalKeyFile
from registry.security.keys import Keyring
from registry.validation import address_key
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.bulk import ResidentImport
from registry.vault.runtime import Registry
from tests.conftest import (
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    TREE,
    Disk,
    id_number,
    make_user,
    rental_body,
)
from tests.conftest import test_settings as make_settings

PURPOSE = "index rotation test"
RENTALS = 7
RESIDENTS = 4
BATCH = 3
TODAY = FIXED_NOW.date()


def resident_phone(seed: int) -> str:
    return f"1370013{seed:04d}"


def resident_body(seed: int) -> dict:
    return {"name": f"赵{'一二三四五六七八九十'[seed % 10]}", "reason": "work",
            "id_number": id_number(seed, birth="19920704"), "arrived_on": "2026-06-01",
            "jurisdiction_code": GRID_A1, "address": f"西门路{seed}号",
            "phone": resident_phone(seed)}


def open_registry(settings, db) -> Registry:
    """A registry over the test's database with a keyring read from the key file afresh (as a
    new process would)."""
    return Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                    clock=Clock(fixed=FIXED_NOW))


@pytest.fixture
def world(db, tmp_path):
    """A registry on a key file of its own (the shared one stays unrotated) holding RENTALS
    rentals (each with its landlord) and RESIDENTS residents, and an officer to look."""
    settings = make_settings(tmp_path)
    LocalKeyFile.create(settings.resolved_key_file)
    registry = open_registry(settings, db)
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        vault.commit()
    officer = make_user(registry, None, "police", COUNTY).actor
    with registry.vault(officer) as vault:
        for seed in range(RENTALS):
            rentals.register(vault, RentalCreate(**rental_body(seed)), purpose=PURPOSE)
        for seed in range(RESIDENTS):
            residents.register_arrival(vault, ArrivalIn(**resident_body(seed)),
                                       purpose=PURPOSE)
        vault.commit()
    return settings, registry, officer


def assert_everything_found(registry: Registry, officer: Actor) -> None:
    with registry.vault(officer) as vault:
        for seed in range(RENTALS):
            body = rental_body(seed)
            landlord = body["landlord"]
            found = rentals.search(vault, RentalSearch(landlord_id_number=landlord["id_number"]),
                                   purpose=PURPOSE)
            assert [r.address for r in found] == [body["address"]], seed
            found = rentals.search(vault, RentalSearch(landlord_phone=landlord["phone"]),
                                   purpose=PURPOSE)
            assert [r.address for r in found] == [body["address"]], seed
            at = vault.rentals.at_address(GRID_A1, body["address"])
            assert at is not None, seed
        for seed in range(RESIDENTS):
            body = resident_body(seed)
            by_number = residents.search(vault, ResidentSearch(id_number=body["id_number"]),
                                         purpose=PURPOSE)
            by_phone = residents.search(vault, ResidentSearch(phone=body["phone"]),
                                        purpose=PURPOSE)
            assert [r.address for r in by_number] == [r.address for r in by_phone] \
                == [body["address"]], seed
        vault.commit()


def assert_duplicates_refused(registry: Registry, officer: Actor) -> None:
    """A rental at an address already registered is refused; a landlord already known is the
    same person, not a new one."""
    with registry.vault(officer) as vault:
        persons = vault.session.scalar(select(func.count()).select_from(Person))
        for seed in (0, RENTALS - 1):  # one from the first batch, one from a later one
            with pytest.raises(Conflict) as caught:
                rentals.register(vault, RentalCreate(**rental_body(seed)), purpose=PURPOSE)
            assert caught.value.field == "address"
        again = rental_body(0, address="北门路1号")  # a new rental, a known landlord
        rentals.register(vault, RentalCreate(**again), purpose=PURPOSE)
        assert vault.session.scalar(select(func.count()).select_from(Person)) == persons
        vault.rollback()


def indexed_under(registry: Registry, version: int) -> dict[str, int]:
    """How many rows of each table carry the index the given version computes."""
    index = registry.keyring.index.of(version)
    counts = {"person": 0, "rental_property": 0, "residency": 0}
    with registry.db.session() as session:
        for seed in range(RENTALS):
            body = rental_body(seed)
            landlord = body["landlord"]
            counts["person"] += session.scalar(select(func.count()).select_from(Person).where(
                Person.id_bidx == index("person", "id_number", landlord["id_number"])))
            counts["rental_property"] += session.scalar(
                select(func.count()).select_from(RentalProperty).where(
                    RentalProperty.address_bidx == index("rental_property", "address",
                                                         address_key(body["address"])),
                    RentalProperty.landlord_phone_bidx == index(
                        "rental_property", "landlord_phone", landlord["phone"])))
        for seed in range(RESIDENTS):
            counts["person"] += session.scalar(select(func.count()).select_from(Person).where(
                Person.id_bidx == index("person", "id_number",
                                        resident_body(seed)["id_number"])))
            counts["residency"] += session.scalar(select(func.count()).select_from(Residency)
                                                  .where(Residency.phone_bidx == index(
                                                      "residency", "phone",
                                                      resident_phone(seed))))
    return counts


def rebuild_all(registry: Registry) -> int:
    done = 0
    with registry.vault(system_actor("tests")) as vault:
        tables = vault.indexes.tables()
    for table in tables:
        finished = False
        while not finished:
            with registry.vault(system_actor("tests")) as vault:
                count, finished = vault.indexes.rebuild(table, BATCH)
                vault.commit()
            done += count
    return done


def status(registry: Registry) -> dict:
    with registry.vault(system_actor("tests")) as vault:
        report = vault.keys.status()
        vault.commit()
    return report.index.model_dump()


def test_rotation_keeps_every_record_findable_and_retires_the_old_root(world, db):
    settings, registry, officer = world
    checkpoint_key = registry.checkpoints.public_key
    assert indexed_under(registry, 1) == {"person": RENTALS + RESIDENTS,
                                          "rental_property": RENTALS, "residency": RESIDENTS}

    with registry.vault(system_actor("tests")) as vault:
        version, pending, resumed = vault.indexes.begin_rotation()
        vault.commit()
    assert (version, resumed) == (2, False)
    assert pending == (RENTALS + RESIDENTS) + RENTALS + RESIDENTS
    assert sorted(json.loads(settings.resolved_key_file.read_text())["index_roots"]) == ["1", "2"]

    # Interrupted after one batch of persons and one of rentals: rows under both roots.
    for table in ("person", "rental_property"):
        with registry.vault(system_actor("tests")) as vault:
            assert vault.indexes.rebuild(table, BATCH) == (BATCH, False)
            vault.commit()
    assert indexed_under(registry, 2) == {"person": BATCH, "rental_property": BATCH,
                                          "residency": 0}
    assert indexed_under(registry, 1) == {"person": RENTALS + RESIDENTS - BATCH,
                                          "rental_property": RENTALS - BATCH,
                                          "residency": RESIDENTS}
    half = status(registry)
    assert half["rebuilding"] and half["active"] == 2
    assert [(v["version"], v["active"], v["in_use"]) for v in half["versions"]] == [
        (1, False, True), (2, True, True)]
    person = next(t for t in half["rebuild"] if t["table"] == "person")
    assert person["left"] == RENTALS + RESIDENTS - BATCH and not person["finished"]

    # During the rebuild: everything is found, duplicates are refused, the old root stays.
    assert_everything_found(registry, officer)
    assert_duplicates_refused(registry, officer)
    with registry.vault(system_actor("tests")) as vault:
        assert vault.indexes.retire() == []
        vault.commit()
    # A process started now (a fresh keyring from the key file) finds everything too.
    assert_everything_found(open_registry(settings, db), officer)

    # Run again: it resumes the same version and finishes.
    with registry.vault(system_actor("tests")) as vault:
        version, pending, resumed = vault.indexes.begin_rotation()
        vault.commit()
    assert (version, resumed) == (2, True)
    assert pending == (RENTALS + RESIDENTS - BATCH) + (RENTALS - BATCH) + RESIDENTS
    assert rebuild_all(registry) == pending
    assert indexed_under(registry, 2) == {"person": RENTALS + RESIDENTS,
                                          "rental_property": RENTALS, "residency": RESIDENTS}
    done = status(registry)
    assert not done["rebuilding"] and all(t["finished"] and t["left"] == 0
                                          for t in done["rebuild"])
    assert_everything_found(registry, officer)

    # Retire: the database forgets version 1, then the key file loses it.
    with registry.vault(system_actor("tests")) as vault:
        retired = vault.indexes.retire()
        vault.commit()
        vault.indexes.destroy(retired)
    assert retired == [1]
    body = json.loads(settings.resolved_key_file.read_text())
    assert list(body["index_roots"]) == ["2"] and "index_root" not in body
    with registry.db.session() as session:
        names = set(session.scalars(select(KeyCheck.name)))
    assert "index" not in names and "index:2" in names
    assert not any(name.startswith("reindex:") for name in names)
    assert [v["version"] for v in status(registry)["versions"]] == [2]
    assert_everything_found(registry, officer)
    assert_duplicates_refused(registry, officer)

    # A fresh process finds everything, and the checkpoints it signs and verifies keep the key.
    fresh = open_registry(settings, db)
    assert_everything_found(fresh, officer)
    assert fresh.checkpoints.public_key == checkpoint_key
    with fresh.vault(system_actor("tests")) as vault:
        audit = vault.audit.verify()
        vault.commit()
    assert audit.ok and not audit.checkpoint_problems, audit

    # Another registry's key file is still refused, by the version the data needs.
    foreign = make_settings(settings.data_dir / "elsewhere")
    LocalKeyFile.create(foreign.resolved_key_file)
    with pytest.raises(SetupError, match="needs index key version 2, which the key file lacks"):
        open_registry(foreign, db)


def test_key_status_over_the_api_shows_the_rebuild(world):
    _, registry, _ = world
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.begin_rotation()
        vault.commit()
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.rebuild("person", BATCH)
        vault.commit()
    with TestClient(create_app(registry), raise_server_exceptions=False) as client:
        admin = make_user(registry, client, "admin", COUNTY)
        response = client.get("/keys/status", headers=admin.headers)
        assert response.status_code == 200, response.text
        index = response.json()["index"]
        assert index["rebuilding"] and index["active"] == 2
        assert [v["version"] for v in index["versions"] if v["in_use"]] == [1, 2]
        person = next(t for t in index["rebuild"] if t["table"] == "person")
        assert person["rows"] - person["left"] == BATCH
        police = make_user(registry, client, "police", COUNTY)
        assert client.get("/keys/status", headers=police.headers).status_code == 403


def test_crashes_between_the_key_file_and_the_database_are_finished_by_running_again(world):
    """A start killed after the key file gained its new root but before the database
    recorded it adopts that root on the next run; a retirement killed after its commit but
    before the key file lost the old root finishes on the next run."""
    settings, registry, officer = world
    assert registry.keyring.provider.new_index_root() == 2  # then the "crash"
    with registry.vault(system_actor("tests")) as vault:
        assert vault.indexes.retire() == []  # nothing in use to retire; 2 is not touched
        vault.commit()
    assert sorted(json.loads(settings.resolved_key_file.read_text())["index_roots"]) == ["1", "2"]
    with registry.vault(system_actor("tests")) as vault:
        version, _, resumed = vault.indexes.begin_rotation()
        vault.commit()
    assert (version, resumed) == (2, False)  # adopted, not a third one
    rebuild_all(registry)
    with registry.vault(system_actor("tests")) as vault:
        assert vault.indexes.retire() == [1]
        vault.commit()  # ... and the "crash" before the key file is rewritten
    assert "index_roots" in json.loads(settings.resolved_key_file.read_text())
    assert_everything_found(registry, officer)  # the database no longer uses root 1
    with registry.vault(system_actor("tests")) as vault:
        assert vault.indexes.retire() == []
        vault.commit()
        vault.indexes.destroy([])
    assert list(json.loads(settings.resolved_key_file.read_text())["index_roots"]) == ["2"]
    assert_everything_found(open_registry(settings, registry.db), officer)


def test_a_foreign_key_file_is_refused_during_a_rebuild(world, db):
    settings, registry, _ = world
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.begin_rotation()
        vault.commit()
    foreign = make_settings(settings.data_dir / "elsewhere")
    LocalKeyFile.create(foreign.resolved_key_file)
    with pytest.raises(SetupError) as caught:
        open_registry(foreign, db)
    assert "index key does not match this database" in caught.value.message
    assert "索引密钥与本数据库不匹配" in caught.value.message_zh
    # The registry's own key file, rotated, still opens the database.
    open_registry(settings, db)


def test_a_key_file_that_lost_the_new_root_is_refused_by_version(world, db):
    settings, registry, _ = world
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.begin_rotation()
        vault.commit()
    body = json.loads(settings.resolved_key_file.read_text())
    body["index_roots"].pop("2")
    settings.resolved_key_file.write_text(json.dumps(body))
    with pytest.raises(SetupError) as caught:
        open_registry(settings, db)
    assert "needs index key version 2, which the key file lacks" in caught.value.message
    assert "第 2 版索引密钥" in caught.value.message_zh


def test_a_running_process_follows_a_rotation_made_elsewhere(world, db):
    """A server that was up before the rotation began: its keyring learns the new root from
    the database's key check and the key file, and finds rows under either."""
    settings, running, officer = world
    assert_everything_found(running, officer)
    operator = open_registry(settings, db)
    with operator.vault(system_actor("tests")) as vault:
        vault.indexes.begin_rotation()
        vault.commit()
    with operator.vault(system_actor("tests")) as vault:
        vault.indexes.rebuild("person", BATCH)
        vault.indexes.rebuild("rental_property", BATCH)
        vault.commit()
    assert_everything_found(running, officer)
    assert_duplicates_refused(running, officer)
    # What the running process writes now is indexed under the new root.
    with running.vault(officer) as vault:
        created = rentals.register(vault, RentalCreate(**rental_body(50)), purpose=PURPOSE)
        vault.commit()
    with running.db.session() as session:
        stored = session.get(RentalProperty, created.id).address_bidx
    assert stored == running.keyring.index.of(2)(
        "rental_property", "address", address_key(rental_body(50)["address"]))


def test_the_bulk_importer_matches_known_persons_during_a_rebuild(world):
    _, registry, officer = world
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.begin_rotation()
        vault.commit()
    with registry.vault(system_actor("tests")) as vault:
        vault.indexes.rebuild("person", BATCH)
        vault.commit()
    # The landlords (some rebuilt, some not) arrive as residents through the importer.
    rows = [(seed + 2, landlord_arrival(seed)) for seed in range(RENTALS)]
    with registry.vault(officer) as vault:
        persons = vault.session.scalar(select(func.count()).select_from(Person))
        job = ResidentImport(vault, update=False)
        with vault.batch():
            outcomes = job.run(rows)
        assert {o.status for o in outcomes.values()} == {"imported"}, outcomes
        assert vault.session.scalar(select(func.count()).select_from(Person)) == persons
        job.finish()
        vault.rollback()


def landlord_arrival(seed: int, street: str = "南门路"):
    landlord = rental_body(seed)["landlord"]
    data = ArrivalIn(name=landlord["name"], id_number=landlord["id_number"],
                     arrived_on="2026-06-01", jurisdiction_code=GRID_A1,
                     address=f"{street}{seed}号", reason="work")
    return residents.arrival(data, today=TODAY)


def test_an_import_overtaken_by_a_rotation_goes_on(world):
    """A rotation that begins between two batches of an import moves persons the import has
    already learnt to new buckets; the import meets them again there and goes on."""
    _, registry, officer = world
    with registry.vault(officer) as vault:
        persons = vault.session.scalar(select(func.count()).select_from(Person))
        job = ResidentImport(vault, update=False)
        with vault.batch():
            first = job.run([(2, landlord_arrival(0))])
        vault.commit()
        job.committed()
        with registry.vault(system_actor("tests")) as admin:
            admin.indexes.begin_rotation()
            admin.commit()
        rebuild_all(registry)
        with vault.batch():
            second = job.run([(3, landlord_arrival(0, "北门路")), (4, landlord_arrival(1))])
        assert first[2].status == "imported"
        assert second[3].status == "rejected" and "row 2" in second[3].error.message
        assert second[4].status == "imported"
        assert vault.session.scalar(select(func.count()).select_from(Person)) == persons
        job.finish()
        vault.rollback()


def test_rotation_refuses_roles_without_the_key_actions(world):
    settings, registry, officer = world
    before = json.loads(settings.resolved_key_file.read_text())
    with registry.vault(officer) as vault, pytest.raises(Forbidden):
        vault.indexes.begin_rotation()
    with registry.vault(officer) as vault, pytest.raises(Forbidden):
        vault.indexes.retire()
    assert before == json.loads(settings.resolved_key_file.read_text())


def test_an_unrotated_key_file_keeps_format_1(tmp_path):
    created = LocalKeyFile.create(tmp_path / "registry.key")
    body = json.loads((tmp_path / "registry.key").read_text())
    assert body["format"] == KEYFILE_FORMAT and "index_roots" not in body
    assert created.index_versions() == [1]
    second = created.new_index_root()
    assert second == 2 and created.index_versions() == [1, 2]
    seed = created.checkpoint_key().private_bytes_raw()
    with pytest.raises(SetupError, match="active one"):
        created.retire_index_root(2)
    created.retire_index_root(1)
    loaded = LocalKeyFile.load(tmp_path / "registry.key")
    assert loaded.index_versions() == [2] and loaded.index_root() == created.index_root(2)
    assert loaded.checkpoint_key().private_bytes_raw() == seed


# --- the command, killed mid-way ------------------------------------------------------------


def test_rotate_index_killed_mid_way_resumes_then_retires(disk: Disk):
    """``registry keys rotate-index`` in its own process, SIGKILLed after a few batches: the
    records are found under either root; ``keys retire`` keeps the old root until a second
    run has resumed (not restarted) and finished the rebuild; then it goes."""
    assert disk.run("init").returncode == 0
    settings = make_settings(disk.data, database_url=disk.url)
    registry = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        vault.commit()
    officer = make_user(registry, None, "police", COUNTY).actor
    with registry.vault(officer) as vault:
        for seed in range(RENTALS):
            rentals.register(vault, RentalCreate(**rental_body(seed)), purpose=PURPOSE)
        for seed in range(RESIDENTS):
            residents.register_arrival(vault, ArrivalIn(**resident_body(seed)),
                                       purpose=PURPOSE)
        vault.commit()
    registry.db.dispose()

    disk.kill_after("reindex", 2, "keys", "rotate-index", "--batch", "1")

    result = disk.run("keys", "status", "--json")
    assert result.returncode == 0, result.stderr
    index = json.loads(result.stdout)["index"]
    assert index["rebuilding"] and index["active"] == 2
    plain = disk.run("keys", "status")
    assert "index key 1  (in use: rebuild under way)" in plain.stdout
    assert "index key 2  (active)" in plain.stdout and "rows left" in plain.stdout
    assert_everything_found(Registry(settings, clock=Clock(fixed=FIXED_NOW)), officer)
    early = disk.run("keys", "retire")
    assert early.returncode == 0 and early.stdout.strip() == "nothing to retire"
    assert "rebuild is unfinished" in early.stderr

    resumed = disk.run("keys", "rotate-index", "--batch", "1000")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the rebuild to index key 2" in resumed.stderr
    retired = disk.run("keys", "retire")
    assert retired.returncode == 0, retired.stderr
    assert json.loads(retired.stdout) == {"retired_index": [1]}
    body = json.loads((disk.data / "registry.key").read_text())
    assert list(body["index_roots"]) == ["2"]
    assert disk.scalar("select count(*) from audit_event where action = 'retire-index'") == 1
    fresh = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    assert_everything_found(fresh, officer)
    assert_duplicates_refused(fresh, officer)
    fresh.db.dispose()
