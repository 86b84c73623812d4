"""Start-up checks (DESIGN.md: "A wrong or missing key is a clear error at start-up, never
silent garbage or data loss").

"Starting with a wrong or missing key file fails with a clear message and changes nothing."
Each case starts a copy of a real registry that already holds data — through the CLI
(``serve``, ``audit verify``, ``init``) and through ``Registry(settings)`` — and then compares
the database (SQLite: the checkpointed file's bytes; PostgreSQL: every row of every table) and
the data directory (the key file's bytes) with what they were before.
Also: an unmigrated database asks for ``registry init``; ``init`` twice keeps the key file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import get_settings
from registry.db import keystore_file
from registry.errors import SetupError
from registry.migrate import upgrade
from registry.rentals import service as rentals
from registry.rentals.schemas import PledgeIn, RentalCreate
from registry.schemas import PersonIn
from registry.security.crypto import LocalKeyFile
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    FIXED_NOW,
    GRID_A1,
    TREE,
    id_number,
    pg_admin,
    pg_url,
)
from tests.conftest import test_settings as make_settings

REPO = Path(__file__).resolve().parent.parent
REGISTRY_BIN = REPO / ".venv" / "bin" / "registry"
KEY_NAME = "registry.key"
DB_NAME = "registry.sqlite3"


# --- PostgreSQL databases of this module's own ---------------------------------------------






def _pg_create(admin, prefix: str, template: str | None = None) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    return name


def _pg_drop(admin, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- a registry on disk ---------------------------------------------------------------------


def _fold_wal(path: Path) -> None:
    """Fold any committed write from a SQLite file's WAL into the file before hashing it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()


@dataclass
class OnDisk:
    backend: str
    data: Path
    url: str

    @property
    def key(self) -> Path:
        return self.data / KEY_NAME

    @property
    def sqlite_path(self) -> Path | None:
        return self.data / DB_NAME if self.backend == "sqlite" else None

    @property
    def env(self) -> dict[str, str]:
        env = {"REGISTRY_DATA_DIR": str(self.data), "REGISTRY_ENVIRONMENT": "test",
               "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64"}
        if self.backend == "postgresql":
            env["REGISTRY_DATABASE_URL"] = self.url
        return env

    def settings(self):
        return make_settings(self.data, database_url=self.url)

    def snapshot(self) -> dict[str, str]:
        """Hashes of the database's content and of every file in the data directory."""
        state = {"database": self._database_digest()}
        for entry in sorted(self.data.iterdir()) if self.data.exists() else []:
            if entry.name.endswith(("-wal", "-shm", "-journal")):
                continue
            if entry.is_dir():
                state[entry.name] = "<directory>"
            else:
                if entry.suffix == ".sqlite3":  # the keystore file too: its WAL folded in
                    _fold_wal(entry)
                state[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
                state[f"{entry.name} mode"] = oct(entry.stat().st_mode & 0o777)
        return state

    def _database_digest(self) -> str:
        if self.backend == "sqlite":
            path = self.sqlite_path
            if not path.exists():
                return "<no file>"
            _fold_wal(path)
            return hashlib.sha256(path.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                for table in _tables(conn):
                    digest.update(f"\n[{table}]\n".encode())
                    for line in conn.execute(text(f'SELECT t::text FROM "{table}" t ORDER BY 1')
                                             ).scalars():
                        digest.update(line.encode() + b"\n")
        finally:
            engine.dispose()
        return digest.hexdigest()

    def tables(self) -> list[str]:
        if self.backend == "sqlite":
            if not self.sqlite_path.exists():
                return []
            conn = sqlite3.connect(self.sqlite_path)
            try:
                return [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            finally:
                conn.close()
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return _tables(conn)
        finally:
            engine.dispose()

    def execute(self, sql: str) -> None:
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.sqlite_path)
            try:
                with conn:
                    conn.execute(sql)
            finally:
                conn.close()
            return
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()


def _tables(conn) -> list[str]:
    return list(conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )).scalars())


def fill(disk: OnDisk) -> None:
    """Migrate, create the key file, and register data (so the database holds data keys)."""
    upgrade(disk.url)
    LocalKeyFile.create(disk.key)
    registry = Registry(disk.settings(), clock=Clock(fixed=FIXED_NOW))
    try:
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            user = vault.users.add(username="police-startup", password="correct-horse-battery",
                                   role="police", jurisdiction_code=COMMUNITY_A)
            vault.commit()
        actor = Actor(id=user.id, username=user.username, role="police", scope=COMMUNITY_A)
        with registry.vault(actor) as vault:
            for seed in (31, 32):
                rentals.register(vault, RentalCreate(
                    jurisdiction_code=GRID_A1, address=f"东门路{seed}号1幢101室", units=1,
                    registered_on="2026-03-01",
                    landlord=PersonIn(name="夏侯明远", id_number=id_number(seed),
                                      phone=f"1390000{seed:04d}"),
                    pledge=PledgeIn(signed_on="2026-03-02", valid_until="2027-03-01")))
            vault.commit()
    finally:
        registry.db.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request, tmp_path_factory) -> Iterator[tuple[str, Path, str | None]]:
    """One registry holding data per backend, built once; tests work on copies."""
    base = tmp_path_factory.mktemp(f"startup-{request.param}")
    if request.param == "sqlite":
        disk = OnDisk("sqlite", base / "data", f"sqlite:///{base / 'data' / DB_NAME}")
        fill(disk)
        yield "sqlite", disk.data, None
        return
    admin = pg_admin()
    name = _pg_create(admin, "registry_startup_filled")
    try:
        disk = OnDisk("postgresql", base / "data", pg_url(name))
        fill(disk)
        yield "postgresql", disk.data, name
    finally:
        _pg_drop(admin, name)
        admin.dispose()


@pytest.fixture
def existing(filled, tmp_path) -> Iterator[OnDisk]:
    """A private copy of the filled registry: data directory and database."""
    backend, data, template = filled
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    if backend == "sqlite":
        yield OnDisk("sqlite", copy, f"sqlite:///{copy / DB_NAME}")
        return
    admin = pg_admin()
    name = _pg_create(admin, "registry_startup_copy", template=template)
    try:
        yield OnDisk("postgresql", copy, pg_url(name))
    finally:
        _pg_drop(admin, name)
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def blank(request, tmp_path) -> Iterator[OnDisk]:
    """An empty data directory; on PostgreSQL an empty database (no tables)."""
    data = tmp_path / "data"
    data.mkdir()
    if request.param == "sqlite":
        yield OnDisk("sqlite", data, f"sqlite:///{data / DB_NAME}")
        return
    admin = pg_admin()
    name = _pg_create(admin, "registry_startup_blank")
    try:
        yield OnDisk("postgresql", data, pg_url(name))
    finally:
        _pg_drop(admin, name)
        admin.dispose()


# --- running the registry ------------------------------------------------------------------


def run_cli(monkeypatch, disk: OnDisk, *args: str):
    """``registry ARGS`` in-process with exactly the disk's REGISTRY_ settings; ``serve``
    never binds a port (uvicorn.run is replaced)."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_") and name != "REGISTRY_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    for name, value in disk.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(disk.data.parent)
    served = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: served.append(True))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()
    result.served = bool(served)
    return result


def run_binary(disk: OnDisk, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run([str(REGISTRY_BIN), *args], env={**clean, **disk.env},
                          cwd=disk.data.parent, capture_output=True, text=True, timeout=120)


def assert_clear_failure(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert fragment in result.stderr, result.output
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert not getattr(result, "served", False)


# --- key-file cases -------------------------------------------------------------------------


def _write_key(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)


def _edit_key(path: Path, change: Callable[[dict], None]) -> None:
    body = json.loads(path.read_text())
    change(body)
    _write_key(path, json.dumps(body))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _missing(disk: OnDisk, _tmp: Path) -> None:
    disk.key.unlink()


def _directory(disk: OnDisk, _tmp: Path) -> None:
    disk.key.unlink()
    disk.key.mkdir(mode=0o700)


def _mode(mode: int):
    def change(disk: OnDisk, _tmp: Path) -> None:
        os.chmod(disk.key, mode)
    return change


def _content(content: str | bytes):
    def change(disk: OnDisk, _tmp: Path) -> None:
        _write_key(disk.key, content)
    return change


def _field(mutate: Callable[[dict], None]):
    def change(disk: OnDisk, _tmp: Path) -> None:
        _edit_key(disk.key, mutate)
    return change


def _placeholder_kek(body: dict) -> None:
    body["keks"] = {k: _b64(bytes(32)) for k in body["keks"]}


def _placeholder_root(body: dict) -> None:
    body["index_root"] = _b64(bytes(32))


def _short_kek(body: dict) -> None:
    body["keks"] = {k: _b64(os.urandom(16)) for k in body["keks"]}


def _not_base64(body: dict) -> None:
    body["keks"] = {k: "not base64 at all!" for k in body["keks"]}


def _no_active(body: dict) -> None:
    body["active"] = "kek-00000000"


def _wrong_format(body: dict) -> None:
    body["format"] = "registry-keyfile/0"


def _another_registry(disk: OnDisk, tmp: Path) -> None:
    other = LocalKeyFile.create(tmp / "other-registry" / KEY_NAME)
    _write_key(disk.key, other.path.read_bytes())


def _same_root_other_kek(disk: OnDisk, _tmp: Path) -> None:
    """The right index root, and the right KEK id, but other KEK bytes."""
    _edit_key(disk.key, lambda body: body.update(
        keks={k: _b64(os.urandom(32)) for k in body["keks"]}))


def _same_root_kek_renamed(disk: OnDisk, _tmp: Path) -> None:
    """The right keys, but the KEK the database refers to is missing under its id."""
    def rename(body: dict) -> None:
        (value,) = body["keks"].values()
        body["keks"] = {"kek-renamed": value}
        body["active"] = "kek-renamed"
    _edit_key(disk.key, rename)


KEY_CASES = {
    "missing": (_missing, "missing. Run `registry init`"),
    "a directory": (_directory, "unreadable or not a key file"),
    "mode 0644": (_mode(0o644), "readable by others; chmod 600"),
    "mode 0640": (_mode(0o640), "readable by others; chmod 600"),
    "mode 0604": (_mode(0o604), "readable by others; chmod 600"),
    "empty": (_content(""), "unreadable or not a key file"),
    "malformed JSON": (_content('{"format": "registry-keyfile/1", "keks": {'),
                       "unreadable or not a key file"),
    "not UTF-8": (_content(bytes(range(128, 256))), "unreadable or not a key file"),
    "a JSON list": (_content("[1, 2, 3]"), "malformed key file"),
    "wrong format tag": (_field(_wrong_format), "malformed key file"),
    "key not base64": (_field(_not_base64), "malformed key file"),
    "placeholder KEK (32 zero bytes)": (_field(_placeholder_kek), "placeholder"),
    "placeholder index root": (_field(_placeholder_root), "placeholder"),
    "16-byte KEK": (_field(_short_kek), "placeholder"),
    "active KEK absent": (_field(_no_active), "active key missing"),
    "another registry's key file": (_another_registry,
                                    "index key does not match this database"),
    "right index root, other KEK bytes": (_same_root_other_kek,
                                          "is not the one this database was encrypted with"),
    "right keys, KEK under another id": (_same_root_kek_renamed, "which the key file lacks"),
}


# Refused by the database's check values (Keyring.check) rather than by the loader.
KEY_CHECK_CASES = {"another registry's key file", "right index root, other KEK bytes",
                   "right keys, KEK under another id"}


@pytest.mark.parametrize("case", list(KEY_CASES))
def test_bad_key_file_fails_clearly_and_changes_nothing(existing, monkeypatch, tmp_path, case):
    change, fragment = KEY_CASES[case]
    change(existing, tmp_path)
    before = existing.snapshot()
    commands = [("serve",), ("audit", "verify")]
    if case != "missing":  # init without a key file is its own test below
        commands.append(("init",))
    for command in commands:
        result = run_cli(monkeypatch, existing, *command)
        assert_clear_failure(result, fragment)
        if case not in KEY_CHECK_CASES:
            assert f"key file {existing.key}" in result.stderr  # names the file
        assert existing.snapshot() == before, f"`registry {' '.join(command)}` changed state"
    with pytest.raises(SetupError) as raised:
        Registry(existing.settings(), clock=Clock(fixed=FIXED_NOW))
    assert fragment in str(raised.value)
    assert existing.snapshot() == before
    if case == "missing":
        assert not existing.key.exists()


def test_unreadable_key_file_fails_clearly(existing, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("running as root: a mode-000 file is still readable, and mode 000 has no "
                    "group/other bits, so the loader accepts it (covered by 'a directory')")
    os.chmod(existing.key, 0o000)
    before = existing.snapshot()
    assert_clear_failure(run_cli(monkeypatch, existing, "audit", "verify"),
                         "unreadable or not a key file")
    assert existing.snapshot() == before


def test_real_binary_refuses_missing_and_foreign_keys(existing, tmp_path):
    """The installed console script, in its own process: exit code 2, one clear line."""
    key = existing.key.read_bytes()
    existing.key.unlink()
    before = existing.snapshot()
    done = run_binary(existing, "audit", "verify")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: key file {existing.key}: missing. Run `registry "
                                  "init`")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert existing.snapshot() == before and not existing.key.exists()

    _write_key(existing.key, key)
    _another_registry(existing, tmp_path)
    before = existing.snapshot()
    done = run_binary(existing, "audit", "verify")
    assert done.returncode == 2
    assert done.stderr.startswith("error: the key file's index key does not match this "
                                  "database (wrong key file?)")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert existing.snapshot() == before


def test_the_right_key_file_still_starts(existing, monkeypatch):
    """Control for the cases above: the untouched copy starts and its audit chain verifies."""
    result = run_cli(monkeypatch, existing, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "audit chain intact" in result.stdout
    assert run_cli(monkeypatch, existing, "serve").served


def test_init_without_the_key_file_refuses_an_existing_database(existing, monkeypatch):
    existing.key.unlink()
    before = existing.snapshot()
    result = run_cli(monkeypatch, existing, "init")
    assert result.exit_code != 0
    assert not existing.key.exists(), "init wrote a new key file next to data it cannot open"
    assert existing.snapshot() == before
    assert "missing" in result.stderr


def test_database_without_check_values_refuses_a_foreign_key_file(existing, monkeypatch):
    body = json.loads(existing.key.read_text())
    (kek_id,) = body["keks"]
    existing.execute("DELETE FROM key_check")
    _write_key(existing.key, json.dumps({
        "format": "registry-keyfile/1", "active": kek_id,
        "keks": {kek_id: _b64(os.urandom(32))}, "index_root": _b64(os.urandom(32))}))
    before = existing.snapshot()
    with pytest.raises(SetupError):
        Registry(existing.settings(), clock=Clock(fixed=FIXED_NOW))
    assert existing.snapshot() == before


# --- the database ---------------------------------------------------------------------------


def _make_unmigrated(disk: OnDisk) -> None:
    LocalKeyFile.create(disk.key)
    if disk.backend == "sqlite":
        conn = sqlite3.connect(disk.sqlite_path)  # an existing database, not a registry's
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
        conn.commit()
        conn.close()


def test_unmigrated_database_asks_for_init(blank, monkeypatch):
    _make_unmigrated(blank)
    before = blank.snapshot()
    tables = blank.tables()
    for command in (("serve",), ("audit", "verify"), ("users", "list")):
        result = run_cli(monkeypatch, blank, *command)
        assert_clear_failure(result, "the database is not initialised; run `registry init`")
        assert blank.snapshot() == before and blank.tables() == tables
    with pytest.raises(SetupError, match="run `registry init`"):
        Registry(blank.settings())
    assert blank.snapshot() == before and blank.tables() == tables


def test_init_then_migrates_the_unmigrated_database(blank, monkeypatch):
    _make_unmigrated(blank)
    key = blank.key.read_bytes()
    result = run_cli(monkeypatch, blank, "init")
    assert result.exit_code == 0, result.output
    assert "keeping it" in result.stdout and blank.key.read_bytes() == key
    assert {"audit_event", "key_check", "person"} <= set(blank.tables())
    assert run_cli(monkeypatch, blank, "audit", "verify").exit_code == 0


def test_missing_sqlite_database_is_not_created(tmp_path, monkeypatch):
    disk = OnDisk("sqlite", tmp_path / "data", f"sqlite:///{tmp_path / 'data' / DB_NAME}")
    disk.data.mkdir()
    LocalKeyFile.create(disk.key)
    result = run_cli(monkeypatch, disk, "audit", "verify")
    assert_clear_failure(result, "the database is not initialised; run `registry init`")
    assert not disk.sqlite_path.exists()


def test_database_that_cannot_be_opened_fails_clearly(blank, monkeypatch):
    LocalKeyFile.create(blank.key)
    if blank.backend == "sqlite":
        blank.sqlite_path.mkdir()
        broken = blank
    else:
        broken = OnDisk("postgresql", blank.data, pg_url(f"missing_{secrets.token_hex(4)}"))
    key = blank.key.read_bytes()
    for command in (("serve",), ("audit", "verify")):
        result = run_cli(monkeypatch, broken, *command)
        assert result.exit_code == 2, (result.exit_code, type(result.exception).__name__)
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.output and not result.served
    assert blank.key.read_bytes() == key
    if blank.backend == "sqlite":
        assert blank.sqlite_path.is_dir() and not any(blank.sqlite_path.iterdir())


# --- init -------------------------------------------------------------------------------


def test_init_twice_keeps_the_key_file_and_changes_nothing(blank, monkeypatch):
    first = run_cli(monkeypatch, blank, "init")
    assert first.exit_code == 0, first.output
    assert f"created key file {blank.key} (mode 0600)" in first.stdout
    assert blank.key.stat().st_mode & 0o777 == 0o600
    LocalKeyFile.load(blank.key)
    before = blank.snapshot()

    second = run_cli(monkeypatch, blank, "init")
    assert second.exit_code == 0, second.output
    assert f"key file {blank.key} exists; keeping it" in second.stdout
    assert "created key file" not in second.stdout
    assert blank.snapshot() == before

    quiet = run_cli(monkeypatch, blank, "init", "--if-needed")
    assert quiet.exit_code == 0, quiet.output
    assert "keeping it" not in quiet.stdout and "created key file" not in quiet.stdout
    assert blank.snapshot() == before

    assert run_cli(monkeypatch, blank, "audit", "verify").exit_code == 0


def test_init_keeps_the_key_of_a_registry_holding_data(existing, monkeypatch):
    key = existing.key.read_bytes()
    before = existing.snapshot()
    result = run_cli(monkeypatch, existing, "init")
    assert result.exit_code == 0, result.output
    assert "keeping it" in result.stdout
    assert existing.key.read_bytes() == key
    assert existing.snapshot() == before


@pytest.mark.parametrize("case", ["placeholder KEK (32 zero bytes)", "mode 0644",
                                  "malformed JSON"])
def test_init_with_a_bad_key_file_creates_no_database(blank, monkeypatch, tmp_path, case):
    LocalKeyFile.create(blank.key)
    change, fragment = KEY_CASES[case]
    change(blank, tmp_path)
    key = blank.key.read_bytes()
    result = run_cli(monkeypatch, blank, "init")
    assert_clear_failure(result, fragment)
    assert blank.key.read_bytes() == key
    assert blank.tables() == []
    if blank.backend == "sqlite":
        assert not blank.sqlite_path.exists()


def test_missing_keystore_is_named_and_nothing_is_written(existing, monkeypatch):
    """The wrapped data keys live apart from the data (their own SQLite file; on PostgreSQL
    their own schema). Without them the registry refuses to start, naming what is missing."""
    if existing.backend == "sqlite":
        keystore = keystore_file(existing.url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{keystore}{suffix}").unlink(missing_ok=True)
    else:
        existing.execute("DROP SCHEMA keystore CASCADE")
    before = existing.snapshot()
    for command in (("serve",), ("users", "list")):
        result = run_cli(monkeypatch, existing, *command)
        assert_clear_failure(result, "the keystore (the wrapped data keys) is missing")
    assert existing.snapshot() == before
    if existing.backend == "sqlite":
        assert not keystore.exists()
