"""Test set-up: one migrated database per backend per run (SQLite always; PostgreSQL when
REGISTRY_TEST_POSTGRES_URL is set and reachable, in a database of its own that is dropped at
the end), and every test inside a transaction that is rolled back afterwards."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from registry.api import create_app
from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import Settings, get_settings
from registry.db import Database, make_engine
from registry.migrate import upgrade
from registry.models import AuditEvent
from registry.rentals import service as rentals_service
from registry.rentals.schemas import RentalCreate
from registry.security.crypto import LocalKeyFile
from registry.security.keys import Keyring
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry

POSTGRES_URL = os.environ.get("REGISTRY_TEST_POSTGRES_URL")
FIXED_NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery"

COUNTY = "330199"
TOWN = "330199001"
COMMUNITY_A = "330199001001"
COMMUNITY_B = "330199001002"
GRID_A1 = "330199001001001"
GRID_A2 = "330199001001002"
GRID_B1 = "330199001002001"
TREE = [
    (COUNTY, "测试县", None),
    (TOWN, "城关街道", COUNTY),
    (COMMUNITY_A, "东门社区", TOWN),
    (COMMUNITY_B, "西湖社区", TOWN),
    (GRID_A1, "东门第一网格", COMMUNITY_A),
    (GRID_A2, "东门第二网格", COMMUNITY_A),
    (GRID_B1, "西湖第一网格", COMMUNITY_B),
]


def test_settings(tmp_path, **overrides) -> Settings:
    # Tests reason in UTC dates; the default time zone (Asia/Shanghai) has its own test.
    values = dict(environment="test", data_dir=tmp_path, key_file=tmp_path / "registry.key",
                  timezone="UTC",
                  argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1)
    values.update(overrides)
    return Settings(_env_file=None, **values)


def pg_admin():
    """An AUTOCOMMIT engine on the test server (for CREATE/DROP DATABASE), or a skip that
    says why the PostgreSQL half cannot run."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL half skipped: REGISTRY_TEST_POSTGRES_URL is not set "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL half skipped: no server reachable at REGISTRY_TEST_POSTGRES_URL "
                    f"({type(exc).__name__})")
    return admin


def pg_url(name: str) -> str:
    """The test server's URL for database ``name``."""
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_database(prefix: str = "registry_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the test server, dropped afterwards
    (or a skip that says why the PostgreSQL half cannot run)."""
    admin = pg_admin()
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A freshly migrated database per backend, for the whole run."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'registry.sqlite3'}"
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def engine(database_url):
    # The tests' rolled-back transactions hold the keystore's writes too (see registry.db).
    engine = make_engine(database_url, keystore_writable=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory, database_url):
    path = tmp_path_factory.mktemp("keys")
    LocalKeyFile.create(path / "registry.key")
    return path


@pytest.fixture
def settings(key_dir) -> Settings:
    return test_settings(key_dir)


@pytest.fixture
def connection(engine):
    """The test's transaction: everything the test writes is rolled back afterwards."""
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def db(engine, connection) -> Database:
    database = Database(engine)
    database._factory = sessionmaker(bind=connection, expire_on_commit=False,
                                     join_transaction_mode="create_savepoint")
    return database


@pytest.fixture
def registry(settings, db) -> Registry:
    registry = Registry(settings, db=db, keyring=Keyring.from_settings(settings),
                        clock=Clock(fixed=FIXED_NOW))
    with registry.vault(system_actor("tests")) as vault:
        vault.jurisdictions.upsert(TREE)
        vault.commit()
    return registry


@pytest.fixture
def client(registry) -> Iterator[TestClient]:
    with TestClient(create_app(registry), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class User:
    actor: Actor
    username: str
    headers: dict[str, str]


def make_user(registry: Registry, client: TestClient | None, role: str, scope: str,
              username: str | None = None) -> User:
    """An account with one role in one scope, signed in when a client is given."""
    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    with registry.vault(system_actor("tests")) as vault:
        user = vault.users.add(username=username, password=PASSWORD, role=role,
                               jurisdiction_code=scope)
        vault.commit()
    actor = Actor(id=user.id, username=username, role=role, scope=scope)
    headers: dict[str, str] = {}
    if client is not None:
        response = client.post("/auth/token", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return User(actor, username, headers)


def id_number(seed: int, birth: str = "19850312") -> str:
    """A valid synthetic ID number; different seeds give different numbers."""
    from registry.validation import check_character

    first17 = f"{COUNTY}{birth}{seed % 1000:03d}"
    return first17 + check_character(first17)


def rental_body(seed: int = 1, *, code: str = GRID_A1, **overrides) -> dict:
    body = {
        "jurisdiction_code": code,
        "address": f"东门路{seed}号{seed % 7 + 1}幢{100 + seed}室",
        "units": 2,
        "registered_on": "2026-03-01",
        "landlord": {"name": f"王{'一二三四五六七八九十'[seed % 10]}明",
                     "id_number": id_number(seed), "phone": f"1380013{seed % 10000:04d}"},
        "pledge": {"signed_on": "2026-03-02", "valid_until": "2027-03-01"},
    }
    body.update(overrides)
    return body


def database_owner_sql(dialect: str) -> list[str]:
    """What someone who owns the database runs before rewriting the audit log: the
    append-only triggers off (for this transaction on PostgreSQL; dropped on SQLite)."""
    if dialect == "postgresql":
        return ["SET LOCAL session_replication_role = replica"]
    return ["DROP TRIGGER IF EXISTS audit_event_append_only_update",
            "DROP TRIGGER IF EXISTS audit_event_append_only_delete"]


class CheckedApi:
    """The test client with the registry's invariants checked on every call: never a 500,
    and exactly one audit event for each success and each denial (403/404). Subclasses add
    their register's routes and the purpose they state by default."""

    purpose: str | None = None
    _DEFAULT = object()  # "the subclass's purpose"; None means no X-Purpose at all

    def __init__(self, registry, client) -> None:
        self.registry = registry
        self.client = client

    def events(self) -> int:
        with self.registry.db.session() as session:
            return session.scalar(select(func.count()).select_from(AuditEvent))

    def call(self, method: str, url: str, user, *, purpose: str | object | None = _DEFAULT,
             body: dict | None = None, params: dict | None = None):
        headers = dict(user.headers)
        purpose = self.purpose if purpose is self._DEFAULT else purpose
        if purpose is not None:
            headers["X-Purpose"] = purpose
        before = self.events()
        response = self.client.request(method, url, headers=headers, json=body, params=params)
        assert response.status_code < 500, response.text
        if response.status_code < 300 or response.status_code in (403, 404):
            assert self.events() - before == 1, f"{method} {url}: {response.status_code}"
        return response

    def get(self, url: str, user, **kwargs):
        return self.call("GET", url, user, **kwargs)

    def post(self, url: str, user, body: dict, **kwargs):
        return self.call("POST", url, user, body=body, **kwargs)

    def patch(self, url: str, user, body: dict, **kwargs):
        return self.call("PATCH", url, user, body=body, **kwargs)


# --- an on-disk registry, for subprocesses (crash tests, the CLI end to end) ------------------

REGISTRY_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "registry"


@dataclass
class Disk:
    """An on-disk registry for subprocesses: its settings and a way to read it."""

    env: dict[str, str]
    cwd: Path
    url: str

    @property
    def data(self) -> Path:
        """The data directory (key file; on SQLite the database and keystore files)."""
        return Path(self.env["REGISTRY_DATA_DIR"])

    def run(self, *args: str, input: str | None = None, password: str | None = None
            ) -> subprocess.CompletedProcess:
        """``registry ARGS`` with this registry's settings, run in this process (typer's
        runner: the same code as the binary, without a second of start-up per command). A
        crash's traceback lands on stderr, as the binary's would. Tests about the process
        itself (killed mid-way, the installed binary) start :data:`REGISTRY_BIN` instead."""
        environ = self.environ(password)
        env = {**{k: None for k in os.environ if k not in environ}, **environ}
        get_settings.cache_clear()
        here = Path.cwd()
        os.chdir(self.cwd)
        try:
            result = CliRunner().invoke(cli_app, list(args), input=input, env=env)
        finally:
            os.chdir(here)
            get_settings.cache_clear()
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(result.exception))
        return subprocess.CompletedProcess([str(REGISTRY_BIN), *args], result.exit_code,
                                           result.stdout, stderr)

    def environ(self, password: str | None = None) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        return {**clean, **self.env, **({"REGISTRY_PASSWORD": password} if password else {})}

    def kill_after(self, action: str, count: int, *args: str) -> None:
        """Start the installed ``registry ARGS`` and SIGKILL it (its whole process group) once
        ``count`` audit events of ``action`` have landed — a crash mid-way, for real."""
        log = (self.cwd / f"{args[0]}.log").open("w")
        child = subprocess.Popen([str(REGISTRY_BIN), *args], env=self.environ(), cwd=self.cwd,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        landed = f"select count(*) from audit_event where action = '{action}'"
        try:
            deadline = time.monotonic() + 60
            while self.scalar(landed) < count:
                assert child.poll() is None, f"{' '.join(args)} ended before it could be killed"
                assert time.monotonic() < deadline, f"no {action} event landed in 60 s"
                time.sleep(0.005)
            os.killpg(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            log.close()

    def open(self, url: str | None = None) -> Registry:
        """An in-process registry on this disk's key file and database (or ``url``), with a
        fresh keyring: what a process started now would see."""
        return Registry(test_settings(self.data, database_url=url or self.url),
                        clock=Clock(fixed=FIXED_NOW))

    def fill(self, rentals: int, purpose: str) -> tuple[Actor, dict]:
        """``registry init``, the test tree, then ``rentals`` rentals registered by one
        officer: the officer, and what each rental shows in clear (address, landlord's name
        and ID number) — for :func:`assert_rentals_open`."""
        assert self.run("init").returncode == 0
        registry = self.open()
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            user = vault.users.add(username="officer", password=PASSWORD, role="police",
                                   jurisdiction_code=COUNTY)
            vault.commit()
        officer = Actor(id=user.id, username="officer", role="police", scope=COUNTY)
        shown = {}
        with registry.vault(officer) as vault:
            for seed in range(rentals):
                read = rentals_service.register(
                    vault, RentalCreate(**rental_body(seed, code=GRID_A1)), purpose=purpose)
                shown[read.id] = (read.address, read.landlord.name, read.landlord.id_number)
            vault.commit()
        registry.db.dispose()
        return officer, shown

    def scalar(self, sql: str, **params):
        engine = make_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar()
        finally:
            engine.dispose()

    def rows(self, sql: str, **params) -> list:
        engine = make_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [r._mapping for r in conn.execute(text(sql), params)]
        finally:
            engine.dispose()


def assert_rentals_open(registry: Registry, officer: Actor, shown: dict, purpose: str) -> None:
    """Every rental of :meth:`Disk.fill` opens to what it showed when registered."""
    with registry.vault(officer) as vault:
        for rental_id, values in shown.items():
            read = rentals_service.get(vault, rental_id, purpose=purpose)
            assert (read.address, read.landlord.name, read.landlord.id_number) == values
        vault.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def disk(request, tmp_path) -> Iterator[Disk]:
    data = tmp_path / "data"
    data.mkdir()
    env = {"REGISTRY_DATA_DIR": str(data), "REGISTRY_ENVIRONMENT": "test",
           "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64",
           "REGISTRY_TIMEZONE": "UTC"}
    if request.param == "sqlite":
        yield Disk(env, tmp_path, f"sqlite:///{data / 'registry.sqlite3'}")
        return
    with postgres_database("registry_disk") as url:
        yield Disk({**env, "REGISTRY_DATABASE_URL": url}, tmp_path, url)
