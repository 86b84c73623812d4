"""Personal data at rest (DESIGN.md, "Encryption at rest"; STYLE.md habit 3).

"A test reads the raw SQLite file and the raw PostgreSQL tables and finds no plaintext name,
ID number, phone or address of any test record." Records are committed for real into a
database of this module's own (the rolled-back test connection would never reach the file),
then the SQLite main file and its WAL, and on PostgreSQL a text dump of every column of every
table (and, when the server is local, its heap, TOAST, index and WAL files), are searched for
every value in UTF-8, GBK and UTF-16.

The rest runs on the shared fixtures: the ciphertext header (version, algorithm, key id), the
associated data that binds a value to its table, column and row, the sealed column type that
refuses plaintext, and a ``Ciphertext`` whose ``repr`` shows nothing.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from registry.clock import Clock
from registry.corrections import service as corrections
from registry.corrections.schemas import CaseCreate
from registry.db import keystore_file
from registry.errors import Unreadable
from registry.migrate import upgrade
from registry.models import DataKey, Person, Pledge, RentalProperty, metadata
from registry.releases import service as releases
from registry.releases.schemas import ReleaseCreate
from registry.rentals import service as rentals
from registry.rentals.schemas import PledgeIn, RentalCreate, RentalUpdate
from registry.residents import service as residents
from registry.residents.schemas import ArrivalIn
from registry.schemas import PersonIn
from registry.security.crypto import (
    FORMAT_VERSION,
    HEADER_BYTES,
    TAG_BYTES,
    Algorithm,
    Ciphertext,
    CryptoError,
    LocalKeyFile,
    key_id_of,
)
from registry.security.keys import Keyring
from registry.security.sealed import PlaintextRefused, Sealed
from registry.validation import check_character
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    COUNTY,
    FIXED_NOW,
    GRID_A1,
    GRID_A2,
    POSTGRES_URL,
    TREE,
    make_user,
    pg_admin,
)
from tests.conftest import test_settings as make_settings

# --- the test people ----------------------------------------------------------------------


def valid_id(birth: str, *, seed: int = 0, want_x: bool = False) -> str:
    """A valid synthetic ID number born on ``birth``; with ``want_x``, one ending in X."""
    for serial in range(seed, seed + 1000):
        first17 = f"{COUNTY}{birth}{serial % 1000:03d}"
        check = check_character(first17)
        if not want_x or check == "X":
            return first17 + check
    raise AssertionError("no serial gives the wanted check character")


@dataclass(frozen=True)
class Someone:
    name: str
    id_number: str
    phone: str
    address: str

    @property
    def birth(self) -> str:
        raw = self.id_number[6:14]
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"

    def values(self) -> list[str]:
        return [self.name, self.id_number, self.phone, self.address, self.birth]


PEOPLE = [
    Someone("司马青云", valid_id("19790415", seed=611), "13957120817",
            "西湖区文三路478号华星时代广场A座1203室"),
    Someone("诸葛晓燕", valid_id("19880229", want_x=True), "15888126374",
            "拱墅区莫干山路1418号5幢2单元701室"),
    Someone("Ouyang Xiaofeng", valid_id("19920107", seed=233), "18668001234",
            "上城区解放路22号甲3幢1102室"),
    Someone("慕容秋水", valid_id("19650930", seed=457), "13605719988",
            "滨江区江南大道3850号创新大厦B座1608室"),
]
SIGNER = "上官婉清"
NEW_ADDRESS = "余杭区良渚街道玉鸟路88号4幢906室"
NEW_LANDLORD = Someone("东方未明", valid_id("19830612", seed=902), "17757150321", "")


# The other registers: a migrant resident, a corrections case and a release case, with the
# facts their tables seal (addresses, workplace, permit, court and prison, notes).
RESIDENT = Someone("尉迟春生", valid_id("19950521", seed=318), "13516887766",
                   "西湖区古荡湾新村12幢3单元402室")
RESIDENT_FACTS = {"hukou_address": "安徽省阜阳市颍州区清河路77号",
                  "workplace": "杭州蓝海精密机械有限公司", "occupation": "数控车床操作工",
                  "permit_number": "浙A330106202400815"}
SUPERVISED = Someone("赫连北辰", valid_id("19870311", seed=745), "13867130022", "")
CASE_FACTS = {"deciding_body": "杭州市西湖区人民法院", "judgment_ref": "(2025)浙0106刑初1187号"}
RELEASED = Someone("令狐远山", valid_id("19750808", seed=129), "15067145500", "")
RELEASE_FACTS = {"releasing_institution": "浙江省乔司监狱",
                 "aftercare_group": "村支书钱满仓、民警孙立新"}


def secret_values() -> list[str]:
    values = [v for p in [*PEOPLE, NEW_LANDLORD, RESIDENT, SUPERVISED, RELEASED]
              for v in p.values() if v]
    return [*values, SIGNER, NEW_ADDRESS, *RESIDENT_FACTS.values(), *CASE_FACTS.values(),
            *RELEASE_FACTS.values()]


def encodings(value: str) -> dict[str, bytes]:
    found = {"utf-8": value.encode(), "utf-16-le": value.encode("utf-16-le"),
             "utf-16-be": value.encode("utf-16-be")}
    with contextlib.suppress(UnicodeEncodeError):
        found["gbk"] = value.encode("gbk")
    return found


def leaks_in(blob: bytes, values: list[str]) -> list[str]:
    """Which (value index, encoding) pairs occur in ``blob`` — never the values themselves."""
    return [f"value #{i} as {name}" for i, value in enumerate(values)
            for name, encoded in encodings(value).items() if encoded in blob]


def leaks_in_text(dump: str, values: list[str]) -> list[str]:
    """In a text dump, as text and as the hex that bytea columns print."""
    lowered = dump.lower()
    found = [f"value #{i} as text" for i, value in enumerate(values) if value in dump]
    for i, value in enumerate(values):
        for name, encoded in encodings(value).items():
            if encoded.hex() in lowered:
                found.append(f"value #{i} as {name} hex")
    return found


def register_everyone(registry: Registry, actor: Actor) -> list[uuid.UUID]:
    """Register, pledge and amend through the services, committing each unit of work."""
    ids = []
    with registry.vault(actor) as vault:
        for n, someone in enumerate(PEOPLE):
            pledge = None
            if n == 0:
                pledge = PledgeIn(signed_on="2026-03-02", valid_until="2027-03-01",
                                  signed_by=SIGNER)
            read = rentals.register(vault, RentalCreate(
                jurisdiction_code=GRID_A1 if n % 2 == 0 else GRID_A2, address=someone.address,
                units=n + 1, registered_on="2026-03-01", pledge=pledge,
                landlord=PersonIn(name=someone.name, id_number=someone.id_number,
                                  phone=someone.phone)))
            ids.append(read.id)
        vault.commit()
    with registry.vault(actor) as vault:
        rentals.amend(vault, ids[1], RentalUpdate(address=NEW_ADDRESS))
        rentals.amend(vault, ids[2], RentalUpdate(landlord=PersonIn(
            name=NEW_LANDLORD.name, id_number=NEW_LANDLORD.id_number,
            phone=NEW_LANDLORD.phone)))
        rentals.sign_pledge(vault, ids[3], PledgeIn(signed_on="2026-04-01",
                                                     valid_until="2027-04-01",
                                                     signed_by=SIGNER))
        vault.commit()
    return ids


def register_other_registers(registry: Registry, actors: dict[str, Actor]) -> None:
    """One record in each of the other registers, committed."""
    with registry.vault(actors["police"]) as vault:
        residents.register_arrival(vault, ArrivalIn(
            name=RESIDENT.name, id_number=RESIDENT.id_number, phone=RESIDENT.phone,
            jurisdiction_code=GRID_A1, address=RESIDENT.address, reason="work",
            arrived_on="2026-05-02", **RESIDENT_FACTS))
        vault.commit()
    with registry.vault(actors["corrections"]) as vault:
        corrections.open_case(vault, CaseCreate(
            name=SUPERVISED.name, id_number=SUPERVISED.id_number, phone=SUPERVISED.phone,
            jurisdiction_code=COMMUNITY_A, category="probation", effective_on="2026-05-01",
            supervision_start="2026-05-01", supervision_end="2027-04-30",
            reported_on="2026-05-06", **CASE_FACTS))
        vault.commit()
    with registry.vault(actors["justice"]) as vault:
        releases.register(vault, ReleaseCreate(
            name=RELEASED.name, id_number=RELEASED.id_number, phone=RELEASED.phone,
            jurisdiction_code=COMMUNITY_A, source="prison", released_on="2026-04-20",
            measures_in_place=True, **RELEASE_FACTS))
        vault.commit()


# --- a committed registry of this module's own ---------------------------------------------


@dataclass
class OwnRegistry:
    backend: str
    url: str
    registry: Registry
    police: Actor
    actors: dict[str, Actor]
    sqlite_path: Path | None = None
    started: float = field(default_factory=time.time)




@pytest.fixture(params=["sqlite", "postgresql"])
def own(request, tmp_path) -> Iterator[OwnRegistry]:
    admin = name = None
    sqlite_path = None
    if request.param == "sqlite":
        sqlite_path = tmp_path / "at-rest.sqlite3"
        url = f"sqlite:///{sqlite_path}"
    else:
        admin = pg_admin()
        name = f"registry_at_rest_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    registry = None
    try:
        upgrade(url)
        LocalKeyFile.create(tmp_path / "registry.key")
        settings = make_settings(tmp_path, database_url=url)
        registry = Registry(settings, clock=Clock(fixed=FIXED_NOW))
        actors = {}
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            for role, scope in (("police", COMMUNITY_A), ("corrections", COUNTY),
                                ("justice", COUNTY)):
                user = vault.users.add(username=f"{role}-{secrets.token_hex(4)}",
                                       password="correct-horse-battery", role=role,
                                       jurisdiction_code=scope)
                actors[role] = Actor(id=user.id, username=user.username, role=role,
                                     scope=scope)
            vault.commit()
        yield OwnRegistry(request.param, url, registry, actors["police"], actors,
                          sqlite_path)
    finally:
        if registry is not None:
            registry.db.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_raw_database_holds_no_plaintext(own):
    register_everyone(own.registry, own.police)
    register_other_registers(own.registry, own.actors)
    values = secret_values()
    if own.backend == "sqlite":
        _check_sqlite_files(own, values)
    else:
        _check_postgres_dump(own, values)


def _check_sqlite_files(own: OwnRegistry, values: list[str]) -> None:
    path = own.sqlite_path
    keystore = keystore_file(f"sqlite:///{path}")
    files = {"": path, "keystore ": keystore}

    def read(prefix: str, file: Path) -> dict[str, bytes]:
        wal = Path(f"{file}-wal")
        return {f"{prefix}main file": file.read_bytes(),
                f"{prefix}WAL": wal.read_bytes() if wal.exists() else b""}

    # While the registry is open, the committed rows sit in the WAL.
    live = {k: v for name, file in files.items() for k, v in read(name, file).items()}
    assert len(live["WAL"]) > 0, "expected the committed rows in the WAL"
    assert len(live["keystore main file"] + live["keystore WAL"]) > 0
    own.registry.db.dispose()
    for file in files.values():
        conn = sqlite3.connect(file)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0
        finally:
            conn.close()
    settled = {f"checkpointed {k}": v for name, file in files.items()
               for k, v in read(name, file).items()}
    # Positive controls: clear columns are readable in the same bytes, so the search works.
    assert "东门第一网格".encode() in live["main file"] + live["WAL"]
    assert "东门第一网格".encode() in settled["checkpointed main file"]
    assert len(settled["checkpointed keystore main file"]) > 0
    assert own.police.username.encode() in settled["checkpointed main file"]
    for where, blob in {**live, **settled}.items():
        assert leaks_in(blob, values) == [], f"plaintext in the SQLite {where}"


def _tables(conn) -> list[str]:
    """The data's tables by name, the keystore's as ``keystore.<name>`` (as in the metadata)."""
    return list(conn.execute(text(
        "SELECT CASE schemaname WHEN 'public' THEN tablename "
        "ELSE schemaname || '.' || tablename END FROM pg_tables "
        "WHERE schemaname IN ('public', 'keystore') ORDER BY 1"
    )).scalars())


def _quoted(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


def _check_postgres_dump(own: OwnRegistry, values: list[str]) -> None:
    engine = create_engine(own.url)
    try:
        with engine.connect() as conn:
            tables = _tables(conn)
            assert set(metadata.tables) <= set(tables)
            dumps = {table: "\n".join(conn.execute(text(
                f'SELECT t::text FROM {_quoted(table)} t')).scalars()) for table in tables}
    finally:
        engine.dispose()
    assert "东门第一网格" in dumps["jurisdiction"]  # positive control: clear columns show
    assert len(dumps["person"].splitlines()) == len(PEOPLE) + 4
    for table, dump in dumps.items():
        assert leaks_in_text(dump, values) == [], f"plaintext in PostgreSQL table {table}"


def _postgres_files(url: str) -> tuple[Path, list[Path]]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            try:
                conn.execute(text("CHECKPOINT"))
                data_dir = Path(conn.execute(text("SHOW data_directory")).scalar())
            except Exception as exc:
                pytest.skip(f"cannot checkpoint or locate the server's files ({exc!r})")
            relpaths = conn.execute(text(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE (n.nspname IN ('public', 'keystore', 'pg_toast') "
                "       OR c.relname = 'pg_statistic') "  # ANALYZE's sample values
                "AND c.relkind IN ('r', 't', 'i') "
                "AND pg_relation_filepath(c.oid) IS NOT NULL")).scalars().all()
    finally:
        engine.dispose()
    files = []
    for relpath in relpaths:
        base = data_dir / relpath
        files += [p for p in [base, *base.parent.glob(f"{base.name}.[0-9]*")] if p.exists()]
    return data_dir, files


@pytest.mark.parametrize("own", ["postgresql"], indirect=True)
def test_raw_postgres_files_hold_no_plaintext(own):
    """Below SQL: the heap, TOAST and index files of this database, and the WAL written
    while the test ran, read as bytes (skipped when the server's files are not local)."""
    register_everyone(own.registry, own.police)
    register_other_registers(own.registry, own.actors)
    data_dir, files = _postgres_files(own.url)
    blobs = {}
    try:
        for path in [*files, *sorted((data_dir / "pg_wal").iterdir())]:
            with contextlib.suppress(FileNotFoundError):  # a WAL segment recycled meanwhile
                if path.parent.name == "pg_wal" and (
                        len(path.name) != 24 or path.stat().st_mtime < own.started - 2):
                    continue  # only the WAL segments written while this test ran
                blobs[str(path.relative_to(data_dir))] = path.read_bytes()
    except PermissionError:
        pytest.skip("the PostgreSQL data directory is not readable by this user")
    assert blobs, "found no files"
    everything = b"".join(blobs.values())
    assert own.police.username.encode() in everything  # positive control
    values = secret_values()
    for where, blob in blobs.items():
        assert leaks_in(blob, values) == [], f"plaintext in PostgreSQL file {where}"


# --- the ciphertext format, on the shared (rolled-back) fixtures ---------------------------


@pytest.fixture
def police(registry) -> Actor:
    return make_user(registry, None, "police", COMMUNITY_A).actor


def register_one(registry: Registry, actor: Actor, someone: Someone, *,
                 pledges: int = 1) -> uuid.UUID:
    with registry.vault(actor) as vault:
        read = rentals.register(vault, RentalCreate(
            jurisdiction_code=GRID_A1, address=someone.address, units=1,
            registered_on="2026-03-01",
            landlord=PersonIn(name=someone.name, id_number=someone.id_number,
                              phone=someone.phone),
            pledge=PledgeIn(signed_on="2026-03-02", valid_until="2027-03-01",
                            signed_by=SIGNER)))
        for n in range(1, pledges):
            rentals.sign_pledge(vault, read.id, PledgeIn(
                signed_on=f"2026-0{3 + n}-01", valid_until=f"2027-0{3 + n}-01",
                signed_by=f"{SIGNER}{n}"))
        vault.commit()
    return read.id


@dataclass(frozen=True)
class Cell:
    """One sealed value where it sits: table, column, row id."""

    table: str
    column: str
    row_id: uuid.UUID
    value: Ciphertext

    @property
    def key_id(self) -> uuid.UUID:
        return key_id_of(self.value)


def sealed_cells(registry: Registry) -> list[Cell]:
    """Every non-null value of every Sealed column of every table (whatever the models are)."""
    cells = []
    with registry.db.session() as session:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, Sealed)]
            if not columns:
                continue
            assert "id" in table.c, f"{table.name}: sealed values must be bound to a row id"
            for row in session.execute(select(table.c.id, *columns)).mappings():
                cells += [Cell(table.name, c.name, row["id"], row[c.name])
                          for c in columns if row[c.name] is not None]
    return cells


def _keys(registry: Registry, key_ids) -> dict[uuid.UUID, bytes]:
    cache: dict[uuid.UUID, bytes] = {}
    with registry.db.session() as session:
        registry.keyring.load_data_keys(session, set(key_ids), cache)
    return cache


def open_cell(registry: Registry, cache, cell: Cell, *, table=None, column=None,
              row_id=None) -> str:
    return registry.keyring.open(cell.value, cache, table or cell.table, column or cell.column,
                                 row_id or cell.row_id)


def assert_well_formed(registry: Registry, cells: list[Cell],
                       algorithm: Algorithm = Algorithm.aes_256_gcm) -> list[str]:
    """Header (version, algorithm, a stored key id), length, and that each opens in place;
    returns the plaintexts."""
    with registry.db.session() as session:
        stored_keys = set(session.scalars(select(DataKey.id)))
    cache = _keys(registry, (c.key_id for c in cells))
    plaintexts = []
    for cell in cells:
        where = f"{cell.table}.{cell.column}"
        assert isinstance(cell.value, Ciphertext), where
        assert cell.value[0] == FORMAT_VERSION == 1, where
        assert cell.value[1] == algorithm, where
        assert cell.key_id in stored_keys, where
        plaintext = open_cell(registry, cache, cell)
        assert len(cell.value) == HEADER_BYTES + len(plaintext.encode()) + TAG_BYTES, where
        plaintexts.append(plaintext)
    return plaintexts


def test_every_sealed_value_carries_the_header(registry, police):
    someone = PEOPLE[1]
    rental_id = register_one(registry, police, someone)
    cells = sealed_cells(registry)
    plaintexts = assert_well_formed(registry, cells)
    # every personal fact sent is sealed somewhere (nothing was dropped or kept in the clear)
    for fact in (someone.name, someone.id_number, someone.phone, someone.address, SIGNER,
                 someone.birth):
        assert fact in plaintexts
    rental_key = _row(registry, RentalProperty, rental_id)["key_id"]
    assert {c.key_id for c in cells if c.table == "rental_property"} == {rental_key}
    assert {c.key_id for c in cells if c.table == "pledge"} == {rental_key}
    person_keys = {c.key_id for c in cells if c.table == "person"}
    assert len(person_keys) == 1 and rental_key not in person_keys  # a key per record


def _row(registry: Registry, model, row_id: uuid.UUID) -> dict:
    table = model.__table__
    with registry.db.session() as session:
        return dict(session.execute(select(table).where(table.c.id == row_id)).mappings().one())


def test_equal_values_seal_to_different_ciphertexts(registry, police):
    twin = Someone(PEOPLE[0].name, valid_id("19790415", seed=612), "13957120818",
                   "西湖区文三路480号1幢101室")
    register_one(registry, police, PEOPLE[0])
    register_one(registry, police, twin)
    cells = sealed_cells(registry)
    cache = _keys(registry, (c.key_id for c in cells))
    by_plaintext: dict[str, list[Cell]] = {}
    for cell in cells:
        by_plaintext.setdefault(open_cell(registry, cache, cell), []).append(cell)
    for value in (PEOPLE[0].name, SIGNER):
        same = by_plaintext[value]
        assert len(same) >= 2
        assert len({bytes(c.value) for c in same}) == len(same)
        assert len({bytes(c.value)[18:30] for c in same}) == len(same)  # fresh nonces


def test_sm4_gcm_deployment_writes_algorithm_2(registry, db, key_dir):
    sm4_settings = make_settings(key_dir, cipher="sm4-gcm")
    sm4 = Registry(sm4_settings, db=db, keyring=Keyring.from_settings(sm4_settings),
                   clock=Clock(fixed=FIXED_NOW))
    actor = make_user(sm4, None, "police", COMMUNITY_A).actor
    someone = PEOPLE[2]
    rental_id = register_one(sm4, actor, someone)
    plaintexts = assert_well_formed(sm4, sealed_cells(sm4), Algorithm.sm4_gcm)
    assert someone.name in plaintexts and someone.address in plaintexts
    with sm4.vault(actor) as vault:
        read = rentals.get(vault, rental_id, purpose="case 7")
    assert (read.landlord.name, read.address) == (someone.name, someone.address)


def test_associated_data_binds_table_column_and_row(registry, police):
    register_one(registry, police, PEOPLE[0], pledges=2)
    register_one(registry, police, PEOPLE[3])
    cells = sealed_cells(registry)
    cache = _keys(registry, (c.key_id for c in cells))
    for cell in cells:
        open_cell(registry, cache, cell)  # control: each value opens where it belongs
    tried = 0
    for cell in cells:
        for other in cells:
            if (other.table, other.column, other.row_id) == (cell.table, cell.column,
                                                             cell.row_id):
                continue
            # the copied value's own key is loaded: only the bound place can refuse it
            with pytest.raises(CryptoError):
                open_cell(registry, cache, cell, table=other.table, column=other.column,
                          row_id=other.row_id)
                pytest.fail(f"{cell.table}.{cell.column} opened as "
                            f"{other.table}.{other.column} of another row")
            tried += 1
    same_key_moves = [(a, b) for a in cells for b in cells
                      if a.key_id == b.key_id and (a.table, a.column, a.row_id)
                      != (b.table, b.column, b.row_id)]
    assert tried > 50 and same_key_moves  # includes moves under the very same data key


def _copy(registry: Registry, source: Cell, target_table: str, target_column: str,
          target_row: uuid.UUID) -> None:
    table = metadata.tables[target_table]
    with registry.db.session() as session:
        session.execute(update(table).where(table.c.id == target_row)
                        .values({target_column: source.value}))
        session.commit()


@pytest.mark.parametrize("move", ["address onto another rental", "address onto own pledge",
                                  "onto another column of the same row"])
def test_copied_value_fails_to_open_through_the_gate(registry, police, move):
    first = register_one(registry, police, PEOPLE[0])
    second = register_one(registry, police, PEOPLE[3])
    cells = sealed_cells(registry)
    mine = [c for c in cells if c.table == "rental_property" and c.row_id == first]
    address = next(c for c in mine if c.column == "address")
    if move == "address onto another rental":
        _copy(registry, address, "rental_property", "address", second)
    elif move == "address onto own pledge":
        pledge = next(c for c in cells if c.table == "pledge"
                      and _row(registry, Pledge, c.row_id)["rental_id"] == first)
        _copy(registry, address, "pledge", "signed_by", pledge.row_id)
    else:
        other = next(c for c in mine if c.column != "address")
        _copy(registry, address, "rental_property", other.column, first)
    with registry.vault(police) as vault, pytest.raises(Unreadable) as refused:
        # Both rentals in one view, so every key involved is loaded: only the bound
        # associated data can stop the copied value from opening.
        rentals.list_rentals(vault, page_size=500, purpose="case 2026-300")
    assert isinstance(refused.value.__cause__, CryptoError)  # a clear 410, not a 500


@pytest.mark.parametrize(("where", "change"), [
    ("version", lambda b: bytes([2]) + b[1:]),
    ("algorithm", lambda b: b[:1] + bytes([Algorithm.sm4_gcm]) + b[2:]),
    ("plaintext algorithm", lambda b: b[:1] + bytes([Algorithm.plaintext]) + b[2:]),
    ("unknown algorithm", lambda b: b[:1] + bytes([9]) + b[2:]),
    ("nonce", lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:]),
    ("body", lambda b: b[:-1] + bytes([b[-1] ^ 0x80])),
    ("truncated", lambda b: b[:HEADER_BYTES - 1]),
    ("tag cut off", lambda b: b[:-TAG_BYTES]),
])
def test_tampered_header_or_body_fails(registry, police, where, change):
    rental_id = register_one(registry, police, PEOPLE[0])
    cell = next(c for c in sealed_cells(registry)
                if c.table == "rental_property" and c.column == "address"
                and c.row_id == rental_id)
    cache = _keys(registry, [cell.key_id])
    tampered = Cell(cell.table, cell.column, cell.row_id, Ciphertext(change(bytes(cell.value))))
    with pytest.raises(CryptoError):
        open_cell(registry, cache, tampered)


def test_sealed_type_refuses_plaintext():
    sealed = Sealed()
    for plain in ["司马青云", b"13957120817", bytearray(b"abc"), memoryview(b"abc"), 42]:
        with pytest.raises(PlaintextRefused):
            sealed.process_bind_param(plain, None)
    assert sealed.process_bind_param(None, None) is None
    sealed_value = Ciphertext(b"\x01\x01" + bytes(40))
    bound = sealed.process_bind_param(sealed_value, None)
    assert type(bound) is bytes and bound == sealed_value
    assert isinstance(sealed.process_result_value(bound, None), Ciphertext)


def test_every_personal_column_is_sealed():
    """The columns that hold personal data are of the sealed type (names, ID numbers, phones,
    addresses), wherever the models put them."""
    personal = ("name", "id_number", "phone", "address", "signed_by", "birth_date")
    public = {("jurisdiction", "name"), ("user_account", "username"),  # not about residents
              ("key_check", "name")}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if column.name.endswith(personal) and (table.name, column.name) not in public:
                assert isinstance(column.type, Sealed), f"{table.name}.{column.name}"


@pytest.mark.parametrize("plain", ["西湖区文三路1号", "西湖区文三路1号".encode()])
def test_sealed_columns_refuse_plaintext_on_the_database(registry, police, plain):
    rental_id = register_one(registry, police, PEOPLE[0])
    before = _row(registry, RentalProperty, rental_id)
    table = RentalProperty.__table__
    with registry.db.session() as session, pytest.raises(StatementError) as core:
        session.execute(update(table).where(table.c.id == rental_id).values(address=plain))
    assert isinstance(core.value.orig, PlaintextRefused)
    with registry.db.session() as session:
        rental = session.get(RentalProperty, rental_id)
        rental.address = plain
        with pytest.raises(StatementError) as orm:
            session.flush()
    assert isinstance(orm.value.orig, PlaintextRefused)
    for error in (core.value, orm.value):
        assert "西湖区文三路1号" not in str(error)  # parameters stay hidden
    assert _row(registry, RentalProperty, rental_id)["address"] == before["address"]


def test_ciphertext_repr_shows_no_content(registry, police):
    rental_id = register_one(registry, police, PEOPLE[0])
    value = _row(registry, RentalProperty, rental_id)["address"]
    shown = [repr(value), str(value), f"{value}", f"{value!r}", format(value, ""),
             repr([value]), repr({"address": value}), repr((value,))]
    for text_form in shown:
        assert f"<Ciphertext {len(value)} bytes>" in text_form
        assert bytes(value).hex()[:16] not in text_form and "\\x" not in text_form
    leaky = Ciphertext(PEOPLE[0].name.encode())
    assert repr(leaky) == str(leaky) == f"<Ciphertext {len(leaky)} bytes>"
    with registry.db.session() as session:
        rows = [session.get(RentalProperty, rental_id), *session.scalars(select(Person))]
        as_text = " ".join(repr(r) + str(r) for r in rows)
    assert "\\x" not in as_text
    for secret in PEOPLE[0].values():
        assert secret not in as_text
