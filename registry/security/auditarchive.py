"""The audit archive file: a segment of the audit chain, moved out of the database once past
its online period.

The container is a backup's (:mod:`registry.security.backupfile`): a clear manifest, then
compressed chunks encrypted under a fresh random key that the key provider wraps, each bound to
its place, then a SHA-256 over the file. The manifest says what the file holds and nothing
personal (events hold no values anyway): the registry it came from (the index-key
fingerprint), the first and last sequence and time, the chain hash before the first event and
at the last, and the signed checkpoint at the last — so the boundary is one an outside party
may hold too. The payload is one JSON line naming the columns, then one line per event with
the values the chain hash covers and the hash.

:func:`read` checks a file on its own: checksum, the registry, the key, every chunk, every
event against the one before it and its hash, the count, the boundary checkpoint's signature
and that its hash is the last event's. Whether the segment joins the online chain is the
anchors' business (:meth:`registry.vault.auditlog.AuditStore.verify`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from registry.errors import SetupError
from registry.security import audit
from registry.security.backupfile import (
    Writer,
    check_sum,
    damaged,
    lines,
    open_key,
    payload,
    read_header,
)
from registry.security.keys import Keyring

FORMAT = "registry-audit-archive/1"
KIND = "audit-archive"
ARCHIVE_FILE = ("audit archive", "审计归档文件")
SUFFIX = ".audit.rba"
_AT = audit.WALKED.index("at")
_ACTOR_ID = audit.WALKED.index("actor_id")


def file_name(first_seq: int, last_seq: int) -> str:
    """One name per segment, so a run that stopped after writing finds its file again."""
    return f"registry-audit-{first_seq:012d}-{last_seq:012d}{SUFFIX}"


@dataclass
class ArchiveManifest:
    archive_id: str
    created_at: str
    index_fingerprint: str
    first_seq: int
    last_seq: int
    first_at: str
    last_at: str
    prev_hash: str  # the chain hash before the first event (all zeros before event 1)
    last_hash: str  # the chain hash at the last event: the boundary checkpoint's
    checkpoint: str  # that checkpoint, as the signed note `audit checkpoint export` writes
    events: int
    kek_id: str = ""
    wrapped_key: str = ""
    kind: str = KIND
    format: str = FORMAT
    cipher: str = "aes-256-gcm"
    compression: str = "zlib"

    def key_aad(self) -> bytes:
        return f"{FORMAT}|{self.archive_id}|{self.kind}".encode()

    def encoded(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=True).encode()

    def note(self) -> audit.Note:
        return audit.parse_notes(self.checkpoint)[0]


@dataclass
class Segment:
    """An archive file that checked out on its own."""

    path: Path
    manifest: ArchiveManifest
    hashes: dict[int, str] = field(default_factory=dict)  # at the sequences asked for


def bad(path: Path, en: str, zh: str) -> SetupError:
    return damaged(path, en, zh, ARCHIVE_FILE)


def read_manifest(path: Path) -> ArchiveManifest:
    def parse(body: dict) -> ArchiveManifest:
        manifest = ArchiveManifest(**body)
        if (manifest.format != FORMAT or manifest.kind != KIND
                or not isinstance(manifest.checkpoint, str)):
            raise ValueError
        manifest.note()  # a checkpoint that is no signed note: not an archive
        return manifest

    return read_header(path, parse, ARCHIVE_FILE)


def _encode(values) -> list:
    row = list(values)
    row[_AT] = audit.canonical_time(row[_AT])
    if row[_ACTOR_ID] is not None:
        row[_ACTOR_ID] = str(row[_ACTOR_ID])
    return row


def write(path: Path, manifest: ArchiveManifest, keyring: Keyring,
          rows: Iterable[Iterable]) -> None:
    """Write the file (hidden while partial; fsynced, then renamed into place and the
    directory fsynced): ``rows`` are the events as :data:`audit.WALKED` values, in order."""
    writer = Writer(path, manifest, keyring.provider)
    try:
        writer.write(json.dumps({"columns": list(audit.WALKED)}).encode() + b"\n")
        for values in rows:
            writer.write(json.dumps(_encode(values), ensure_ascii=False).encode() + b"\n")
        writer.finish()
    except BaseException:
        writer.abandon()
        raise


def read(path: Path, keyring: Keyring, *, trusted: str | None = None,
         want: Collection[int] = ()) -> Segment:
    """Check an archive file end to end (see the module docstring); the chain hashes at the
    sequences in ``want`` come back, to hold checkpoints against. A clear error names the file
    and what is wrong with it.

    Whose archive it is says its boundary checkpoint: signed by the registry's checkpoint key
    (``trusted``, by default the keyring's), which outlives index-key rotation — the index
    fingerprint in the manifest does not, so it is not what is compared."""
    manifest = read_manifest(path)
    check_sum(path, ARCHIVE_FILE)
    own = trusted or keyring.provider.checkpoint_key().public_key().public_bytes_raw().hex()
    note = manifest.note()
    if note.public_key != own:
        raise bad(path, "was made by another registry (its boundary checkpoint is signed by "
                        "another key: another registry's archive, or the wrong key file)",
                  "来自另一个系统（其边界检查点由其他密钥签名：其他系统的归档，或密钥文件不对）")
    if not note.valid():
        raise bad(path, "its boundary checkpoint is not signed by this registry's key",
                  "其边界检查点并非由本系统的密钥签名")
    if (note.seq, note.hash) != (manifest.last_seq, manifest.last_hash):
        raise bad(path, "its boundary checkpoint is not its last event's",
                  "其边界检查点与最后一个事件不符")
    key = open_key(path, manifest, keyring.provider, ARCHIVE_FILE)
    wanted = set(want)
    segment = Segment(path, manifest)
    expected, prev = manifest.first_seq, manifest.prev_hash
    first_at = last_at = None
    columns = None
    for line in lines(payload(path, manifest, key, ARCHIVE_FILE)):
        try:
            item = json.loads(line)
        except ValueError:
            raise bad(path, "its contents are malformed", "内容格式错误") from None
        if columns is None:
            columns = item.get("columns") if isinstance(item, dict) else None
            if columns != list(audit.WALKED):
                raise bad(path, "its contents are malformed", "内容格式错误")
            continue
        if not isinstance(item, list) or len(item) != len(columns):
            raise bad(path, "its contents are malformed", "内容格式错误")
        seq, stored = item[0], item[-1]
        if seq != expected or item[15] != prev:
            raise bad(path, f"event {expected} is missing or out of order in it",
                      f"其中事件 {expected} 缺失或顺序错乱")
        if audit.walked_hash(prev, item) != stored:
            raise bad(path, f"event {seq} in it does not match its hash (edited)",
                      f"其中事件 {seq} 与其哈希不符（被篡改）")
        if seq in wanted:
            segment.hashes[seq] = stored
        first_at = first_at or item[_AT]
        last_at = item[_AT]
        prev = stored
        expected += 1
    if (expected - manifest.first_seq != manifest.events or expected - 1 != manifest.last_seq
            or prev != manifest.last_hash or (first_at, last_at)
            != (manifest.first_at, manifest.last_at)):
        raise bad(path, "its events do not match its manifest", "其事件与清单不符")
    return segment


def new_manifest(keyring: Keyring, *, first_seq: int, last_seq: int, first_at: datetime,
                 last_at: datetime, prev_hash: str, note: audit.Note) -> ArchiveManifest:
    return ArchiveManifest(
        archive_id=str(uuid.uuid4()), created_at=datetime.now(UTC).isoformat(),
        index_fingerprint=keyring.index.fingerprint(), first_seq=first_seq,
        last_seq=last_seq, first_at=audit.canonical_time(first_at),
        last_at=audit.canonical_time(last_at), prev_hash=prev_hash, last_hash=note.hash,
        checkpoint=note.text(), events=last_seq - first_seq + 1)
