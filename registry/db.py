"""Engine and sessions. SQLite (WAL, foreign keys, busy timeout, ``BEGIN IMMEDIATE``) is the
embedded default; PostgreSQL (psycopg 3) is production.

Every transaction of this application writes (a read appends an audit event), so on SQLite each
one starts with ``BEGIN IMMEDIATE``: taking the write lock up front means a transaction never
has to upgrade a read snapshot to a write lock, which WAL refuses with SQLITE_BUSY_SNAPSHOT
when another writer committed in between.

The keystore (wrapped data keys) lives apart from the data: the schema ``keystore`` on
PostgreSQL, where one transaction commits both atomically; on SQLite a file of its own,
attached. SQLite commits the files of a transaction one after the other in WAL mode (main
first), so a crash in between could leave data whose keys never landed. Hence, on SQLite, the
runtime attaches the keystore **read-only** — a data transaction cannot write it, and its
``BEGIN IMMEDIATE`` locks the data file alone — and every keystore write goes through
:func:`keystore_writes`: a connection of its own, whose transaction holds the keystore file
alone, committed before the data that needs the keys. A crash in between leaves an orphan key
(harmless), never data without its key. Migrations, a restore into a new database and the
tests' rolled-back transactions attach it writable instead (``keystore_writable``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from registry.errors import Conflict, Invalid, Unavailable

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Where the wrapped data keys live, apart from the data: an attached SQLite file of its own, or
# a PostgreSQL schema — so each has its own backup cycle, and a shredded key does not survive in
# a backup of the data.
KEYSTORE = "keystore"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def keystore_file(url: str) -> Path | None:
    """The keystore's own SQLite file, beside the data file: ``registry.sqlite3`` keeps its
    wrapped data keys in ``registry.keys.sqlite3`` (None for PostgreSQL, where the keystore is
    the schema ``keystore``, and for in-memory databases)."""
    path = sqlite_file(url)
    return path.with_name(f"{path.stem}.keys{path.suffix}") if path is not None else None


# SQLite data engines and the engines that write their keystore (see the module docstring).
_KEYSTORE_WRITERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def make_engine(url: str, *, create_keystore: bool = False, keystore_writable: bool = False,
                **kwargs) -> Engine:
    """An engine with the keystore in reach as schema ``keystore``. On SQLite the keystore
    file is created only when ``create_keystore`` (migrations); otherwise a missing one is
    attached as an empty in-memory database, which the start-up check refuses by name. It is
    attached read-only, its writes going through :func:`keystore_writes`, unless
    ``keystore_writable`` (or ``create_keystore``)."""
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    keystore = keystore_file(url)
    if keystore is None or not (create_keystore or keystore.exists()):
        return _sqlite_engine(url, ":memory:", **kwargs)
    if create_keystore or keystore_writable:
        return _sqlite_engine(url, str(keystore), **kwargs)
    engine = _sqlite_engine(url, f"file:{quote(str(keystore.resolve()))}?mode=ro", **kwargs)
    # An in-memory main database would get one connection per thread; a pool it is.
    _KEYSTORE_WRITERS[engine] = _sqlite_engine(
        "sqlite://", str(keystore), **{"poolclass": QueuePool, **kwargs})
    return engine


def _sqlite_engine(url: str, keystore: str, **kwargs) -> Engine:
    """A SQLite engine whose connections attach ``keystore`` (a path, a read-only URI or
    ``:memory:``) and begin every transaction with the write lock."""
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "isolation_level": None, "timeout": 30,
                      "uri": keystore.startswith("file:")},
        hide_parameters=True,
        **kwargs,
    )
    writable = not keystore.endswith("mode=ro")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"ATTACH DATABASE ? AS {KEYSTORE}", (keystore,))
        for schema in ("main", KEYSTORE) if writable else ("main",):
            cursor.execute(f"PRAGMA {schema}.journal_mode=WAL")
            cursor.execute(f"PRAGMA {schema}.synchronous=NORMAL")
        # Deleted and overwritten content is zeroed on disk, not left in free pages: a
        # shredded data key does not survive in the keystore file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        # A read snapshot (a backup, which only reads) begins deferred: no write lock. A
        # read-only attached keystore takes no write lock under BEGIN IMMEDIATE either.
        snapshot = connection.get_execution_options().get("snapshot", False)
        connection.exec_driver_sql("BEGIN" if snapshot else "BEGIN IMMEDIATE")

    return engine


def keystore_engine(engine: Engine) -> Engine | None:
    """The engine that writes ``engine``'s keystore, when that is not ``engine`` itself (a
    SQLite runtime engine: its keystore is attached read-only)."""
    return _KEYSTORE_WRITERS.get(engine)


@contextmanager
def keystore_writes(session: Session) -> Iterator[Connection]:
    """Where a write to the keystore goes. SQLite at runtime: a connection of its own, in a
    transaction that holds the keystore file alone and commits when the block ends — before
    the caller's data transaction does. Elsewhere (PostgreSQL; a writable attachment): the
    session's own connection, committed with the data as one."""
    bind = session.get_bind()
    writer = keystore_engine(bind) if isinstance(bind, Engine) else None
    if writer is None:
        yield session.connection()
        return
    with writer.begin() as conn:
        yield conn


def chunks(items: list, size: int):
    """``items`` in slices of ``size``: IN-lists stay under the drivers' parameter limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_many(session: Session | Connection, table: Table, rows: list[dict]) -> None:
    """One driver-level executemany of ``rows`` (dicts with the same keys), for batch writes.
    Every value still goes through its column type's bind processor — the sealed type's
    refusal of plaintext included — but not through the per-row statement machinery, which
    costs more than the insert itself."""
    if not rows:
        return
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(rows[0]))
    names = list(compiled.positiontup) if compiled.positional else list(rows[0])
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in names]
    columns = [[row[name] for row in rows] for name in names]
    for i, process in enumerate(processors):
        if process is not None:
            columns[i] = _processed(columns[i], process)
    rows_out = zip(*columns, strict=True)
    if dialect.name == "postgresql":  # COPY: the fastest way in, same values, same checks
        quote = dialect.identifier_preparer
        target = f"{quote.format_table(table)} ({', '.join(map(quote.quote, names))})"
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
                f"COPY {target} FROM STDIN") as copy:
            for row in rows_out:
                copy.write_row(row)
        return
    params = (list(rows_out) if compiled.positional
              else [dict(zip(names, row, strict=True)) for row in rows_out])
    conn.exec_driver_sql(compiled.string, params)


def execute_many(session: Session | Connection, statement, rows: list[dict]) -> None:
    """``statement`` once for each of ``rows`` (dicts keyed by its bind parameter names), in
    one driver-level executemany: every value through its parameter's bind processor, but
    not through the per-row parameter handling of ``Connection.execute``, which costs more
    than an indexed UPDATE."""
    if not rows:
        return
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect
    compiled = statement.compile(dialect=dialect)
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    processors = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in names]
    columns = [[row[name] for row in rows] for name in names]
    for i, process in enumerate(processors):
        if process is not None:
            columns[i] = [process(v) for v in columns[i]]
    params = (list(zip(*columns, strict=True)) if compiled.positional
              else [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)])
    conn.exec_driver_sql(compiled.string, params)


def _processed(values: list, process) -> list:
    """``process`` over a column, once per run of the same object (a batch's timestamps)."""
    out, last, result = [], _NOTHING, None
    for value in values:
        if value is None:
            out.append(process(None))
            continue
        if value is not last:
            last, result = value, process(value)
        out.append(result)
    return out


_NOTHING = object()


class Database:
    """Owns the engine and hands out sessions. Only the vault and account/audit infrastructure
    use it; a test (tests/test_layering.py) keeps domain, route and CLI modules away from it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(engine, expire_on_commit=False, autoflush=True)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.engine)

    def new_session(self) -> Session:
        return self._factory()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work that rolls back unless the caller commits. A value the database
        refuses becomes a clear error (never a 500), and no driver text — which can quote the
        values — goes anywhere."""
        session = self.new_session()
        try:
            yield session
        except DataError:  # e.g. a NUL byte in text on PostgreSQL
            raise Invalid("a value could not be stored; check for control characters",
                          "有字段值无法保存，请检查是否含控制字符") from None
        except IntegrityError:
            raise Conflict("conflicts with a record saved at the same time; try again",
                           "与同时保存的记录冲突，请重试") from None
        except OperationalError:
            raise Unavailable("the database is unavailable or busy; try again",
                              "数据库暂不可用，请稍后重试") from None
        finally:
            session.rollback()
            session.close()

    def compact_keystore(self, wait: float = 60.0) -> bool:
        """Leave no old copy of a destroyed data key where the database keeps old row
        versions; False if something kept one for now (run it again later).

        SQLite: secure_delete zeroed the old cells; the WAL, which may still hold them, is
        folded into the files and truncated (a reader still on an older snapshot stops that).
        PostgreSQL: the keystore table is rewritten (VACUUM FULL), so its dead tuples go with
        the old file; the data tables are vacuumed (their dead rows held ciphertext only, now
        without a key). A dead tuple survives the rewrite while any transaction that began
        before it died is still open — on the whole server, since a snapshot's horizon counts
        every database's transactions — so the rewrite first waits (up to ``wait`` seconds)
        until every transaction older than now has ended."""
        if self.sqlite:
            writer = keystore_engine(self.engine) or self.engine
            clean = True
            for engine, schema in ((self.engine, "main"), (writer, KEYSTORE)):
                raw = engine.raw_connection()
                try:
                    busy, *_ = raw.driver_connection.execute(
                        f"PRAGMA {schema}.wal_checkpoint(TRUNCATE)").fetchone()
                    clean = clean and not busy
                finally:
                    raw.close()
            return clean
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            now = int(conn.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar())
            deadline = time.monotonic() + wait
            while True:
                oldest_running = int(conn.exec_driver_sql(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").scalar())
                if oldest_running > now or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            conn.exec_driver_sql(f"VACUUM FULL {KEYSTORE}.data_key")
            conn.exec_driver_sql("VACUUM person, residency, rental_property, pledge, "
                                 "release_case, assistance_record")
        return oldest_running > now

    def dispose(self) -> None:
        writer = keystore_engine(self.engine)
        if writer is not None:
            writer.dispose()
        self.engine.dispose()
