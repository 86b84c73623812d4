"""The backup file: a clear manifest, then a compressed, encrypted stream, then a checksum.

A backup is two files per run, data and keystore, sharing one backup id. Each file is::

    magic(8) | manifest length(4) | manifest (JSON) | chunk* | SHA-256 of all that came before

The manifest is in the clear and holds no personal data: format, kind, backup id, time, alembic
revision, the registry's index-key fingerprint (so a backup from another registry is named as
such), row counts per table, and the file's own backup key wrapped by the key provider (the
associated data binds the backup id and kind, so a wrapped key moved to another file does not
open). The payload — JSON lines, one header line per table then its rows, compressed with zlib —
is cut into chunks, each ``length(4) | AES-256-GCM ciphertext`` under the fresh random backup
key, with the nonce the chunk's index and the associated data ``SHA-256(magic | manifest) |
index | final flag``: an edited manifest, a dropped, reordered or spliced chunk (from another
file, under another key, or at another place), or a file cut short all fail to open. The
trailing SHA-256 lets ``registry backup verify`` tell a damaged file (a bad disk, a broken copy)
from a wrong key before anything is decrypted.

Nothing here reads key-encryption keys: the provider wraps and unwraps (an HSM may hold them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from registry.errors import SetupError
from registry.security.crypto import CryptoError, KeyProvider

MAGIC = b"REGBAK\x00\x01"
FORMAT = "registry-backup/1"
KINDS = ("data", "keystore")
CHUNK_BYTES = 1 << 20
_TAG = 16
_MAX_MANIFEST = 1 << 20
_CHECKSUM = 32
M = TypeVar("M")


@dataclass
class Manifest:
    kind: str
    backup_id: str
    created_at: str
    revision: str
    index_fingerprint: str
    tables: dict[str, int]
    kek_id: str = ""
    wrapped_key: str = ""
    format: str = FORMAT
    cipher: str = "aes-256-gcm"
    compression: str = "zlib"

    def key_aad(self) -> bytes:
        return f"{FORMAT}|{self.backup_id}|{self.kind}".encode()

    def encoded(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=True).encode()


# What a file is called in messages: a backup, or a file in the same format (an audit archive,
# registry.security.auditarchive).
BACKUP_FILE = ("backup file", "备份文件")


def damaged(path: Path, en: str, zh: str, what: tuple[str, str] = BACKUP_FILE) -> SetupError:
    return SetupError(f"{what[0]} {path}: {en}", f"{what[1]} {path}：{zh}")


class Writer:
    """Writes one backup file: a hidden partial file (0600) renamed into place once complete
    and fsynced, so a crash never leaves a file that looks finished."""

    def __init__(self, path: Path, manifest: Manifest, provider: KeyProvider) -> None:
        self.path = path
        self._key = AESGCM.generate_key(256)
        manifest.kek_id, wrapped = provider.wrap(self._key, aad=manifest.key_aad())
        manifest.wrapped_key = base64.b64encode(wrapped).decode()
        self._partial = path.with_name(f".{path.name}.partial")
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        head = manifest.encoded()
        prefix = MAGIC + struct.pack(">I", len(head)) + head
        self._bound = hashlib.sha256(MAGIC + head).digest()
        self._emit(prefix)
        self._aead = AESGCM(self._key)
        self._zip = zlib.compressobj(6)
        self._buffer = bytearray()
        self._index = 0

    def _emit(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    def write(self, data: bytes) -> None:
        self._buffer += self._zip.compress(data)
        while len(self._buffer) >= CHUNK_BYTES:
            self._chunk(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]

    def _chunk(self, plain: bytes, *, final: bool) -> None:
        nonce = self._index.to_bytes(12, "big")
        sealed = self._aead.encrypt(nonce, plain, _aad(self._bound, self._index, final))
        self._emit(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def finish(self) -> None:
        self._buffer += self._zip.flush()
        while len(self._buffer) > CHUNK_BYTES:
            self._chunk(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]
        self._chunk(bytes(self._buffer), final=True)
        self._file.write(self._hash.digest())
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._partial, self.path)
        _fsync_dir(self.path.parent)

    def abandon(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def _aad(bound: bytes, index: int, final: bool) -> bytes:
    return bound + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(path: Path) -> Manifest:
    """The clear manifest, or a clear error for a file that is not a backup."""
    def parse(body: dict) -> Manifest:
        manifest = Manifest(**body)
        if manifest.format != FORMAT or manifest.kind not in KINDS:
            raise ValueError
        return manifest

    return read_header(path, parse, BACKUP_FILE)


def read_header(path: Path, parse: Callable[[dict], M], what: tuple[str, str]) -> M:
    """The clear manifest as ``parse`` makes it of the JSON header (ValueError or TypeError:
    not this kind of file), or a clear error naming the file."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(MAGIC))
            (length,) = struct.unpack(">I", handle.read(4) or b"\0\0\0\0")
            if magic != MAGIC or not 0 < length <= _MAX_MANIFEST:
                raise ValueError
            body = json.loads(handle.read(length))
            if not isinstance(body, dict):
                raise ValueError
            return parse(body)
    except OSError as exc:
        raise damaged(path, f"cannot be read ({exc.strerror})", "无法读取", what) from None
    except (ValueError, TypeError, struct.error):
        raise damaged(path, f"not a registry {what[0].removesuffix(' file')}, or its header is "
                            "damaged", f"不是本系统的{what[1]}，或其文件头已损坏", what) from None


def check_sum(path: Path, what: tuple[str, str] = BACKUP_FILE) -> None:
    """The trailing SHA-256 over the rest of the file: a damaged or cut-short file is named
    as such before any decryption is tried."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    if size < len(MAGIC) + 4 + _CHECKSUM:
        raise damaged(path, "cut short", "文件不完整", what)
    with path.open("rb") as handle:
        left = size - _CHECKSUM
        while left:
            block = handle.read(min(left, CHUNK_BYTES))
            if not block:
                break
            digest.update(block)
            left -= len(block)
        stored = handle.read(_CHECKSUM)
    if stored != digest.digest():
        raise damaged(path, "checksum mismatch: the file is damaged or incomplete (take it "
                            "from another copy)",
                      "校验和不符：文件已损坏或不完整（请使用其他副本）", what)


def open_key(path: Path, manifest: Manifest, provider: KeyProvider,
             what: tuple[str, str] = BACKUP_FILE) -> bytes:
    """The file's backup key, unwrapped by the provider; a clear message naming the cause when
    the key file cannot open it."""
    if manifest.kek_id not in provider.kek_ids():
        raise damaged(
            path,
            f"was encrypted under key-encryption key {manifest.kek_id}, which the key file no "
            "longer holds (retired after this backup was taken, or another key file)",
            f"使用主密钥 {manifest.kek_id} 加密，但密钥文件中已没有该密钥"
            "（备份后已退役，或密钥文件不对）", what)
    try:
        return provider.unwrap(manifest.kek_id, base64.b64decode(manifest.wrapped_key),
                               aad=manifest.key_aad())
    except (CryptoError, ValueError):
        raise damaged(path, f"its key does not open with key-encryption key "
                            f"{manifest.kek_id} of the key file (wrong key file?)",
                      f"其密钥无法用密钥文件中的主密钥 {manifest.kek_id} 解开"
                      "（密钥文件错误？）", what) from None


def payload(path: Path, manifest: Manifest, key: bytes,
            what: tuple[str, str] = BACKUP_FILE) -> Iterator[bytes]:
    """The decrypted, decompressed payload, streamed; a damaged, cut, reordered or spliced
    stream raises a clear error (call :func:`check_sum` first to name plain damage)."""
    aead = AESGCM(key)
    unzip = zlib.decompressobj()
    bound = hashlib.sha256(MAGIC + manifest.encoded()).digest()
    size = path.stat().st_size - _CHECKSUM
    broken = damaged(path, "does not decrypt: damaged, cut short or altered",
                     "无法解密：文件已损坏、不完整或被篡改", what)
    with path.open("rb") as handle:
        handle.seek(len(MAGIC))
        (length,) = struct.unpack(">I", handle.read(4))
        handle.seek(length, os.SEEK_CUR)
        index, final = 0, False
        while not final:
            raw = handle.read(4)
            if len(raw) < 4 or handle.tell() > size:
                raise broken
            (length,) = struct.unpack(">I", raw)
            if not _TAG <= length <= CHUNK_BYTES + _TAG or handle.tell() + length > size:
                raise broken
            sealed = handle.read(length)
            final = handle.tell() == size
            try:
                plain = aead.decrypt(index.to_bytes(12, "big"), sealed,
                                     _aad(bound, index, final))
            except InvalidTag:
                raise broken from None
            try:
                yield unzip.decompress(plain)
            except zlib.error:
                raise broken from None
            index += 1
        if not unzip.eof:
            raise broken


def lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines of a stream of byte blocks, without their newlines."""
    tail = b""
    for block in chunks:
        parts = (tail + block).split(b"\n")
        tail = parts.pop()
        yield from parts
    if tail:
        yield tail
