"""Backup and restore: a logical, portable dump of every table from one consistent snapshot,
written as two encrypted files — the data and the keystore — and loaded back in one
transaction, then checked record by record.

* **One snapshot.** On PostgreSQL one REPEATABLE READ, read-only transaction sees both schemas
  at one instant. On SQLite the keystore is a second file: the snapshot transaction begins
  deferred and reads both files while a second connection holds the write lock for a moment
  (so no commit falls between the two), then the lock is let go and writers carry on.
* **Portable.** Rows are JSON lines, values by type (UUIDs, times, base64 bytes), read and
  written through the tables as the database has them (reflected, with the models' column
  types), so a SQLite backup restores into PostgreSQL and back, at the revision it was taken.
* **Two files, two cycles.** The keystore file is kept on a shorter cycle than the data file
  (``keystore_backups_keep``): a data backup holds ciphertext only, so once every keystore
  backup from before an erasure is gone, no backup can restore the erased person.
* **Restore checks before it writes.** Both files are checksummed and decrypted end to end
  (same backup id, same registry, row counts, the key file holds every key-encryption key the
  keystore needs) before the target is touched; the load runs in one transaction that commits
  only when every sealed value opens with its data key (or the key is recorded as destroyed),
  the key file fits the restored key checks and the audit chain verifies — with the restore's
  own audit event appended after the restored chain, in the same transaction.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from registry.config import Settings
from registry.db import KEYSTORE, insert_many, is_sqlite, make_engine, sqlite_file
from registry.errors import Forbidden, SetupError
from registry.migrate import alembic_config, upgrade
from registry.models import DataKey, metadata
from registry.models._types import new_id
from registry.security import audit
from registry.security.authz import Policy
from registry.security.backupfile import (
    Manifest,
    Writer,
    check_sum,
    damaged,
    lines,
    open_key,
    payload,
    read_manifest,
)
from registry.security.crypto import Ciphertext, CryptoError, key_id_of
from registry.security.keys import Keyring
from registry.security.sealed import Sealed
from registry.vault.base import BACKUP, Actor, Store

SUFFIX = {"data": ".data.rbk", "keystore": ".keys.rbk"}
_BATCH = 1000


@dataclass
class Taken:
    backup_id: str
    files: list[Path]
    tables: dict[str, int]
    pruned: list[Path] = field(default_factory=list)


@dataclass
class Checked:
    path: Path
    manifest: Manifest
    rows: int


@dataclass
class Restored:
    backup_id: str
    revision: str
    tables: dict[str, int]
    sealed_values: int
    erased_values: int
    audit_events: int


class BackupAdmin(Store):
    """``registry backup`` behind the gate: the operator's right to take one, and its audit
    event (which lands after the snapshot, so it is in the next backup, not this one)."""

    kind = BACKUP

    def take(self, directory: Path) -> Taken:
        self.vault.require(BACKUP, "create")
        registry = self.vault.registry
        taken = take(registry.db.engine, registry.keyring, directory)
        settings = self.vault.settings
        taken.pruned = (prune(directory, "keystore", settings.keystore_backups_keep)
                        + prune(directory, "data", settings.data_backups_keep))
        self.vault.record(BACKUP, "create", record_id=taken.backup_id,
                          detail=f"rows={sum(taken.tables.values())};pruned={len(taken.pruned)}")
        return taken


# --- taking a backup -------------------------------------------------------------------------


def take(engine: Engine, keyring: Keyring, directory: Path) -> Taken:
    """Write the pair of files for one snapshot into ``directory`` (created 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    backup_id = str(new_id())
    now = datetime.now(UTC)
    stem = f"registry-{now:%Y%m%dT%H%M%S.%f}Z-{backup_id[-12:]}"  # sorts by time
    files: list[Path] = []
    writers: list[Writer] = []
    try:
        with _snapshot(engine) as conn:
            tables = _tables(conn)
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            counts = {t.fullname: conn.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in tables}
            for kind in ("keystore", "data"):
                mine = [t for t in tables if (t.schema == KEYSTORE) == (kind == "keystore")]
                manifest = Manifest(
                    kind=kind, backup_id=backup_id, created_at=now.isoformat(),
                    revision=revision, index_fingerprint=keyring.index.fingerprint(),
                    tables={t.fullname: counts[t.fullname] for t in mine})
                path = directory / f"{stem}{SUFFIX[kind]}"
                writer = Writer(path, manifest, keyring.provider)
                writers.append(writer)
                _dump(conn, mine, writer)
                writer.finish()
                writers.remove(writer)
                files.append(path)
    except SQLAlchemyError:
        raise SetupError("the backup could not read the database; nothing was written",
                         "备份无法读取数据库，未写入任何文件") from None
    except OSError as exc:
        raise SetupError(f"the backup could not be written to {directory} ({exc.strerror})",
                         f"备份无法写入 {directory}") from None
    finally:
        for writer in writers:
            writer.abandon()
        if len(files) < 2:  # never leave half a pair
            for path in files:
                path.unlink(missing_ok=True)
    return Taken(backup_id, files, counts)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees data and keystore at one instant."""
    if not is_sqlite(engine):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn
        return
    with engine.connect() as conn:
        conn.execution_options(snapshot=True)
        with conn.begin():
            # The write lock, held only while the snapshot's read of each file begins: no
            # commit can land between the two.
            with engine.connect() as lock, lock.begin():
                conn.execute(text("SELECT count(*) FROM main.sqlite_master"))
                conn.execute(text(f"SELECT count(*) FROM {KEYSTORE}.sqlite_master"))  # noqa: S608
                conn.execute(select(func.count()).select_from(DataKey))
                conn.execute(text("SELECT seq FROM audit_head"))
            yield conn


def _tables(conn: Connection) -> list[Table]:
    """Every table of both schemas as the database has it, in dependency order, with the
    models' column types where they name the same column (so values read and bind alike on
    both databases: UUIDs, UTC times, sealed bytes)."""
    reflected = MetaData()
    reflected.reflect(bind=conn)
    reflected.reflect(bind=conn, schema=KEYSTORE)
    out = []
    for table in reflected.sorted_tables:
        if table.name == "alembic_version":
            continue
        model = metadata.tables.get(table.fullname)
        if model is not None:
            for column in table.columns:
                if column.name in model.c:
                    column.type = model.c[column.name].type
        out.append(table)
    return out


def _dump(conn: Connection, tables: list[Table], writer: Writer) -> None:
    for table in tables:
        names = [c.name for c in table.columns]
        writer.write(json.dumps({"table": table.fullname, "columns": names}).encode() + b"\n")
        result = conn.execution_options(yield_per=_BATCH).execute(
            select(table).order_by(*table.primary_key.columns))
        for rows in result.partitions():
            writer.write(b"".join(
                json.dumps(list(row), default=_encode, ensure_ascii=False).encode() + b"\n"
                for row in rows))


def _encode(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    raise TypeError(f"cannot back up a {type(value).__name__}")


def prune(directory: Path, kind: str, keep: int) -> list[Path]:
    """Delete the oldest complete backups of ``kind`` beyond the newest ``keep`` (names sort
    by time)."""
    files = sorted(directory.glob(f"registry-*{SUFFIX[kind]}"))
    old = files[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


# --- checking files ---------------------------------------------------------------------------


def check(path: Path, keyring: Keyring) -> Checked:
    """Checksum, the registry it came from, decryption end to end, and the row counts."""
    manifest = read_manifest(path)
    check_sum(path)
    if manifest.index_fingerprint not in keyring.index.fingerprints().values():
        raise damaged(path, "was made by another registry (its index key differs from the key "
                            "file's: another registry's backup, or the wrong key file)",
                      "来自另一个系统（索引密钥与密钥文件不符：其他系统的备份，或密钥文件不对）")
    key = open_key(path, manifest, keyring.provider)
    counts: dict[str, int] = {}
    kek_ids: set[str] = set()
    current = None
    for table, _, row in _rows(path, manifest, key):
        if table != current:
            current = table
            counts[table] = 0
        if row is not None:
            counts[table] += 1
            if table == f"{KEYSTORE}.data_key" and row.get("wrapped") is not None:
                kek_ids.add(row["kek_id"])
    if counts != manifest.tables:
        raise damaged(path, "its row counts do not match its manifest",
                      "行数与清单不符")
    missing = sorted(kek_ids - set(keyring.provider.kek_ids()))
    if missing:
        raise damaged(path, f"holds data keys wrapped under key-encryption key {missing[0]}, "
                            "which the key file no longer holds (retired after this backup "
                            "was taken?)",
                      f"其中的数据密钥由主密钥 {missing[0]} 加密，"
                      "但密钥文件中已没有该密钥（备份后已退役？）")
    return Checked(path, manifest, sum(counts.values()))


def _rows(path: Path, manifest: Manifest, key: bytes) -> Iterator[tuple[str, list, dict | None]]:
    """(table, columns, row as a dict of encoded values) per row, and (table, columns, None)
    at each table's start."""
    table, columns = None, []
    for line in lines(payload(path, manifest, key)):
        try:
            item = json.loads(line)
            if isinstance(item, dict):
                table, columns = item["table"], item["columns"]
                yield table, columns, None
                continue
            if table is None or len(item) != len(columns):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise damaged(path, "its contents are malformed", "内容格式错误") from None
        yield table, columns, dict(zip(columns, item, strict=True))


def check_pair(data: Path, keys: Path, keyring: Keyring, *,
               later_keystore: bool = False) -> tuple[Checked, Checked]:
    """Both files of one backup, each checked in full — or, with ``later_keystore``, a data
    backup and a keystore backup of the same registry taken at the same time or after it
    (every data key the data needs is still there, as a tombstone if erased since)."""
    for path, kind in ((data, "data"), (keys, "keystore")):
        if read_manifest(path).kind != kind:
            raise damaged(path, f"is not a {kind} backup", f"不是{kind}备份")
    first, second = check(data, keyring), check(keys, keyring)
    if later_keystore:
        taken = (datetime.fromisoformat(m.created_at) for m in (first.manifest, second.manifest))
        if next(taken) > next(taken):
            raise SetupError(
                f"{keys} was taken before {data}: it lacks the data keys of later records; "
                "use the keystore backup of the same run or a later one",
                f"{keys} 早于 {data}，缺少之后记录的数据密钥；请使用同一次或更晚的密钥库备份")
    elif first.manifest.backup_id != second.manifest.backup_id:
        raise SetupError(
            f"{data} and {keys} come from different backups ({first.manifest.backup_id}, "
            f"{second.manifest.backup_id}): restore the data with the keystore taken with it "
            "(or a later one, with --later-keystore)",
            f"{data} 与 {keys} 不属于同一次备份：请使用同一次备份的数据与密钥库文件"
            "（或用 --later-keystore 指定更晚的密钥库备份）")
    return first, second


# --- restoring ----------------------------------------------------------------------------------


def restore(settings: Settings, keyring: Keyring, data: Path, keys: Path, url: str,
            actor: Actor, *, later_keystore: bool = False) -> Restored:
    """Check both files, then load them into the empty database at ``url``, all or nothing."""
    if not Policy(settings.policy_dir).allows(actor.role, BACKUP.name, "restore"):
        raise Forbidden("your role may not restore backups", "您的角色无权恢复备份")
    checked_data, checked_keys = check_pair(data, keys, keyring,
                                            later_keystore=later_keystore)
    manifest = checked_data.manifest
    revision = manifest.revision
    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        script.get_revision(revision)
    except Exception:  # alembic raises several kinds for an unknown revision
        raise SetupError(
            f"the backup is at schema revision {revision}, which this version of the registry "
            "does not know (a newer version made it): upgrade the registry first",
            f"备份的数据库版本 {revision} 不为本程序所知（由更新版本生成）：请先升级本程序"
        ) from None
    _prepare(url, revision)
    # One transaction loads both (on SQLite the keystore attached writable): an interrupted
    # restore leaves a new database to delete and restore again, nothing else.
    engine = make_engine(url, keystore_writable=True, poolclass=NullPool)
    try:
        with Session(engine) as session:
            tables = {t.fullname: t for t in _tables(session.connection())}
            session.execute(text("DELETE FROM audit_head"))  # the fresh chain's seed row
            loaded: dict[str, int] = {}
            for checked in (checked_keys, checked_data):  # keys before the data needing them
                key = open_key(checked.path, checked.manifest, keyring.provider)
                loaded.update(_load(session, checked.path, checked.manifest, key, tables))
            expected = {**checked_data.manifest.tables, **checked_keys.manifest.tables}
            if loaded != expected:
                raise SetupError("the restored row counts do not match the backup; nothing "
                                 "was restored", "恢复的行数与备份不符，未恢复任何数据")
            keyring.check(session)
            opened, erased = _open_every_sealed_value(session, keyring, tables.values())
            verification = audit.verify(session)
            if not verification.ok:
                raise SetupError(
                    f"the restored {verification.describe()}; nothing was restored",
                    f"恢复的审计链在事件 {verification.broken_seq} 处断裂，未恢复任何数据")
            audit.append(session, [audit.Event(
                actor_id=actor.id, actor=actor.username, role=actor.role, action="restore",
                kind=BACKUP.name, record_id=manifest.backup_id, jurisdiction_code=None,
                detail=f"revision={revision};rows={sum(loaded.values())};erased={erased}")])
            session.commit()
    except SQLAlchemyError:
        raise SetupError("the target database refused the restore; it was rolled back and "
                         "nothing was restored", "目标数据库拒绝了恢复操作，已回滚，未恢复任何数据"
                         ) from None
    finally:
        engine.dispose()
    if revision != script.get_current_head():
        _migrate(url)
    return Restored(manifest.backup_id, revision, loaded, opened, erased,
                    verification.checked + 1)


def _prepare(url: str, revision: str) -> None:
    """Refuse a target that holds data; migrate an empty one to the backup's revision."""
    path = sqlite_file(url)
    if path is None or path.exists():
        engine = make_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                for table in _tables(conn):
                    query = select(text("1")).select_from(table).limit(1)
                    if table.name == "audit_head":
                        query = query.where(table.c.seq != 0)
                    if conn.execute(query).first() is not None:
                        raise SetupError(
                            f"the target database already holds data ({table.fullname}); "
                            "restore into a new, empty database",
                            f"目标数据库中已有数据（{table.fullname}）；请恢复到新建的空数据库")
                current = (conn.execute(text("SELECT version_num FROM alembic_version"))
                           .scalar_one_or_none()
                           if inspect(conn).has_table("alembic_version") else None)
        except SQLAlchemyError:
            raise SetupError("the target database cannot be read", "无法读取目标数据库") from None
        finally:
            engine.dispose()
        if current not in (None, revision):
            script = ScriptDirectory.from_config(alembic_config(url))
            if current not in {r.revision for r in script.iterate_revisions(revision, "base")}:
                raise SetupError(
                    f"the empty target is already at schema revision {current}, past the "
                    f"backup's {revision}: restore into a new database",
                    f"目标空库的数据库版本 {current} 比备份的 {revision} 新：请恢复到新建的数据库")
    _migrate(url, revision)


def _migrate(url: str, revision: str = "head") -> None:
    try:
        upgrade(url, revision)
    except SQLAlchemyError:
        raise SetupError("the target database could not be migrated (unreachable, or no right "
                         "to create tables)",
                         "无法迁移目标数据库（无法连接，或无建表权限）") from None


def _load(session: Session, path: Path, manifest: Manifest, key: bytes,
          tables: dict[str, Table]) -> dict[str, int]:
    counts: dict[str, int] = {}
    batch: list[dict] = []
    table = decoders = None

    def flush() -> None:
        insert_many(session, table, batch)
        batch.clear()

    for name, columns, row in _rows(path, manifest, key):
        if row is None:
            if batch:
                flush()
            table = tables.get(name)
            if table is None or not set(columns) <= set(table.c.keys()):
                raise damaged(path, f"table {name} does not fit the schema at revision "
                                    f"{manifest.revision}", f"表 {name} 与数据库版本不符")
            decoders = {c: _decoder(table.c[c]) for c in columns}
            counts[name] = 0
            continue
        batch.append({c: None if v is None else decoders[c](v) for c, v in row.items()})
        counts[name] += 1
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return counts


def _decoder(column):
    if isinstance(column.type, Sealed):
        return lambda v: Ciphertext(base64.b64decode(v))
    try:  # a TypeDecorator (UTC times) decodes as the type it wraps
        kind = getattr(column.type, "impl_instance", column.type).python_type
    except NotImplementedError:
        return lambda v: v
    return {bytes: base64.b64decode, uuid.UUID: uuid.UUID, datetime: datetime.fromisoformat,
            date: date.fromisoformat, time: time.fromisoformat, Decimal: Decimal,
            }.get(kind, lambda v: v)


def _open_every_sealed_value(session: Session, keyring: Keyring,
                             tables) -> tuple[int, int]:
    """Open every sealed value of every row with its data key (cached per batch only, so
    memory stays flat); a value whose key is recorded as destroyed counts as erased. Any
    other failure names the table, column and row id — never a value."""
    opened = erased = 0
    for table in tables:
        sealed = [c.name for c in table.columns if isinstance(c.type, Sealed)]
        if not sealed or "id" not in table.c:
            continue
        last = None
        while True:
            query = select(table.c.id, *(table.c[c] for c in sealed)).order_by(table.c.id)
            if last is not None:
                query = query.where(table.c.id > last)
            rows = session.execute(query.limit(_BATCH)).all()
            if not rows:
                break
            last = rows[-1].id
            key_ids = {key_id_of(v) for row in rows for v in row[1:] if v is not None}
            cache: dict[uuid.UUID, bytes] = {}
            keyring.load_data_keys(session, key_ids, cache)
            destroyed = set(session.execute(select(DataKey.id).where(
                DataKey.id.in_(key_ids - set(cache)), DataKey.wrapped.is_(None))).scalars())
            for row in rows:
                for column, value in zip(sealed, row[1:], strict=True):
                    if value is None:
                        continue
                    if key_id_of(value) in destroyed:
                        erased += 1
                        continue
                    try:
                        keyring.open(value, cache, table.name, column, row.id)
                    except CryptoError:
                        raise SetupError(
                            f"{table.name}.{column} of row {row.id} does not open with its "
                            "data key; nothing was restored",
                            f"{table.name}.{column}（行 {row.id}）无法用其数据密钥解密，"
                            "未恢复任何数据") from None
                    opened += 1
    return opened, erased
