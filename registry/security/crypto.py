"""Envelope encryption and blind indexes.

A key-encryption key (KEK) from a key provider wraps one data key (DEK) per person and per
case; personal data is sealed under the DEK with an AEAD (AES-256-GCM, or SM4-GCM where the
deployment must use the commercial-cryptography standards). Destroying a DEK destroys its
record's data everywhere, old backups included (crypto-shredding).

Ciphertext layout (all of it authenticated)::

    version(1) | algorithm(1) | key id(16) | nonce(12) | ciphertext+tag

The associated data is ``header | table | column | row id``: the header is authenticated rather
than merely prefixed, and a value copied onto another row or column fails to open.

Blind indexes are HMAC-SHA256 under a key derived per (table, column) from an index root key,
over the normalised value, truncated to ``bits`` bits. Leakage: equal values show as equal
within one column (and only there: each column has its own key, so a dump cannot link one
register to another). Truncation means a bucket holds several values once the register is large
(CipherSweet's rule: sqrt(R) < 2**bits < R/2), so a leaked index key does not enumerate the ID
space; lookups decrypt the few candidates and compare, and uniqueness is enforced by the vault
inside the write transaction, never by the index.

Index roots come in versions (1, 2, ...; the newest is the active one), so a root that may have
leaked can be replaced: ``registry keys rotate-index`` adds a version and rebuilds every index
under it (:mod:`registry.vault.indexadmin`), then the old version retires. The audit
checkpoints' signing key does not rotate with it: it stays derived from the first root (the
key file keeps that derivation as its ``checkpoint_seed`` once root 1 is retired), so the
checkpoints already signed — and those kept outside the database — still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from registry.errors import SetupError

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + 1 + 16 + NONCE_BYTES
KEYFILE_FORMAT = "registry-keyfile/1"
# Format 2 holds index-root versions (``index_roots``) and the checkpoint seed; a key file whose
# index root was never rotated is still written in format 1, which older releases read.
KEYFILE_FORMAT_VERSIONED = "registry-keyfile/2"


class Algorithm(IntEnum):
    plaintext = 0  # benchmarks only (settings.bench_plaintext)
    aes_256_gcm = 1
    sm4_gcm = 2


class CryptoError(Exception):
    """A ciphertext failed to open: wrong key, wrong row, or tampering. Never shows values."""


class Ciphertext(bytes):
    """Bytes that came out of :func:`seal`. The sealed column type accepts nothing else."""

    def __repr__(self) -> str:
        return f"<Ciphertext {len(self)} bytes>"

    __str__ = __repr__


def _aead_encrypt(alg: Algorithm, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    if alg is Algorithm.aes_256_gcm:
        return AESGCM(key).encrypt(nonce, data, aad)
    if alg is Algorithm.sm4_gcm:
        encryptor = Cipher(algorithms.SM4(key[:16]), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag
    if alg is Algorithm.plaintext:
        return data
    raise CryptoError(f"unknown algorithm {alg}")


def _aead_decrypt(alg: Algorithm, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    try:
        if alg is Algorithm.aes_256_gcm:
            return AESGCM(key).decrypt(nonce, data, aad)
        if alg is Algorithm.sm4_gcm:
            body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
            decryptor = Cipher(algorithms.SM4(key[:16]), modes.GCM(nonce, tag)).decryptor()
            decryptor.authenticate_additional_data(aad)
            return decryptor.update(body) + decryptor.finalize()
        if alg is Algorithm.plaintext:
            return data
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("ciphertext failed authentication") from exc
    raise CryptoError(f"unknown algorithm {alg}")


def seal(
    alg: Algorithm, key_id: uuid.UUID, key: bytes, plaintext: bytes, *, context: bytes
) -> Ciphertext:
    nonce = os.urandom(NONCE_BYTES)
    header = bytes((FORMAT_VERSION, alg)) + key_id.bytes + nonce
    return Ciphertext(header + _aead_encrypt(alg, key, nonce, plaintext, header + context))


class Sealer:
    """Seals many values under one data key, setting the cipher up once (batch importers);
    the output is exactly :func:`seal`'s."""

    def __init__(self, alg: Algorithm, key_id: uuid.UUID, key: bytes) -> None:
        self._alg, self._key = alg, key
        self._prefix = bytes((FORMAT_VERSION, alg)) + key_id.bytes
        self._aes = AESGCM(key) if alg is Algorithm.aes_256_gcm else None

    def __call__(self, plaintext: bytes, context: bytes) -> Ciphertext:
        nonce = os.urandom(NONCE_BYTES)
        header = self._prefix + nonce
        if self._aes is not None:
            return Ciphertext(header + self._aes.encrypt(nonce, plaintext, header + context))
        return Ciphertext(header + _aead_encrypt(self._alg, self._key, nonce, plaintext,
                                                 header + context))


def key_id_of(ciphertext: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=bytes(ciphertext[2:18]))


def open_sealed(ciphertext: bytes, key: bytes, *, context: bytes,
                allow_plaintext: bool = False) -> bytes:
    """Open a sealed value. The plaintext "algorithm" exists only for benchmarks: anywhere
    else a ciphertext claiming it is a forgery and is refused."""
    if len(ciphertext) < HEADER_BYTES or ciphertext[0] != FORMAT_VERSION:
        raise CryptoError("unknown ciphertext format")
    try:
        alg = Algorithm(ciphertext[1])
    except ValueError as exc:
        raise CryptoError("unknown algorithm") from exc
    if alg is Algorithm.plaintext and not allow_plaintext:
        raise CryptoError("unencrypted value where a ciphertext belongs")
    header = bytes(ciphertext[:HEADER_BYTES])
    nonce = header[18:]
    return _aead_decrypt(alg, key, nonce, bytes(ciphertext[HEADER_BYTES:]), header + context)


def context(table: str, column: str, row_id: uuid.UUID) -> bytes:
    return b"\x00".join((table.encode(), column.encode(), row_id.bytes))


# --- key provider -------------------------------------------------------------------------


class KeyProvider(Protocol):
    """Holds the key-encryption keys (KEKs, in versions) and the index root key. The local key
    file is the default; a hardware security module (PKCS#11) implements the same methods, with
    the KEKs never leaving it. ``wrap`` always uses the active version; ``unwrap`` any version
    the provider still holds."""

    active_kek_id: str

    def kek_ids(self) -> list[str]:
        """Every KEK version the provider holds, the active one included."""
        ...

    def wrap(self, dek: bytes, *, aad: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes: ...

    def new_kek(self) -> str:
        """Create a KEK version, make it the active one, and return its id (rotation). Durable
        before it returns: nothing may be wrapped under a version that could be lost."""
        ...

    def retire_kek(self, kek_id: str) -> None:
        """Destroy a KEK version that nothing refers to any longer. Never the active one."""
        ...

    def index_versions(self) -> list[int]:
        """Every index-root version the provider holds, oldest first; the last is active."""
        ...

    def index_root(self, version: int | None = None) -> bytes:
        """The root of an index version (the active one by default); a version the provider
        does not hold is a :class:`CryptoError`."""
        ...

    def new_index_root(self) -> int:
        """Create an index-root version, the new active one, and return it (index rotation).
        Durable before it returns, like :meth:`new_kek`."""
        ...

    def retire_index_root(self, version: int) -> None:
        """Destroy an index-root version nothing is indexed under any longer; never the active
        one."""
        ...

    def checkpoint_key(self) -> Ed25519PrivateKey:
        """The audit checkpoints' signing key: derived from the first index root, whatever the
        versions since."""
        ...


@dataclass
class LocalKeyFile:
    """A JSON key file, mode 0600, written by ``registry init``; rotation adds KEK and index-root
    versions to it (rewriting it atomically) and retirement removes them.

    ``_index_root`` is the first index root (version 1) while the file holds it; ``index_roots``
    every version held; ``_seed`` the checkpoint key's private bytes, derived from the first root
    once and kept when that root retires."""

    path: Path
    keks: dict[str, bytes]
    active_kek_id: str
    _index_root: bytes | None
    algorithm: Algorithm = Algorithm.aes_256_gcm
    _stamp: tuple[int, int] | None = None  # (inode, mtime) of the file as loaded
    _aeads: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)
    index_roots: dict[int, bytes] = field(default_factory=dict, repr=False)
    _seed: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.index_roots and self._index_root is not None:
            self.index_roots = {1: self._index_root}
        if self._seed is None and self._index_root is not None:
            self._seed = _checkpoint_seed(self._index_root)

    def __repr__(self) -> str:
        return (f"<LocalKeyFile {self.path} active={self.active_kek_id!r} "
                f"index versions={sorted(self.index_roots)}>")

    @classmethod
    def create(cls, path: Path) -> LocalKeyFile:
        if path.exists():
            raise SetupError(
                f"key file {path} already exists; refusing to overwrite it",
                f"密钥文件 {path} 已存在，拒绝覆盖",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        kek_id, root = _new_kek_id(), os.urandom(32)
        body = _body(kek_id, {kek_id: os.urandom(32)}, {1: root}, _checkpoint_seed(root))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:  # a dangling symbolic link, say
            raise SetupError(f"{path} exists (a broken link?); refusing to write a key there",
                             f"{path} 已存在（可能是失效的链接），拒绝写入密钥") from exc
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle, indent=2)
        return cls.load(path)

    @classmethod
    def load(cls, path: Path, algorithm: Algorithm = Algorithm.aes_256_gcm) -> LocalKeyFile:
        def fail(en: str, zh: str) -> SetupError:
            return SetupError(f"key file {path}: {en}", f"密钥文件 {path}：{zh}")

        if not path.exists():
            raise fail(
                "missing. Run `registry init` to create one, or set REGISTRY_KEY_FILE",
                "不存在。请运行 `registry init` 创建，或设置 REGISTRY_KEY_FILE",
            )
        try:
            mode = path.stat().st_mode
            body = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail("unreadable or not a key file", "无法读取或不是密钥文件") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise fail(
                "readable by others; chmod 600 it", "其他用户可读，请执行 chmod 600"
            )
        try:
            keks = {k: base64.b64decode(v, validate=True) for k, v in body["keks"].items()}
            if body["format"] == KEYFILE_FORMAT:
                first = base64.b64decode(body["index_root"], validate=True)
                roots, seed = {1: first}, _checkpoint_seed(first)
            elif body["format"] == KEYFILE_FORMAT_VERSIONED:
                roots = {int(v): base64.b64decode(k, validate=True)
                         for v, k in body["index_roots"].items()}
                seed = base64.b64decode(body["checkpoint_seed"], validate=True)
                if not roots or min(roots) < 1 or len(seed) != 32:
                    raise ValueError("index_roots")
            else:
                raise KeyError("format")
            active = body["active"]
            if not isinstance(active, str) or not all(isinstance(k, str) for k in keks):
                raise TypeError("key ids must be strings")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise fail("malformed key file", "密钥文件格式错误") from exc
        for key in (*keks.values(), *roots.values()):
            if len(key) != 32 or len(set(key)) < 8:
                raise fail(
                    "a key is not 32 random bytes (placeholder?)",
                    "密钥不是 32 字节随机值（占位符？）",
                )
        if active not in keks:
            raise fail("active key missing", "缺少当前主密钥")
        if 1 in roots and _checkpoint_seed(roots[1]) != seed:
            raise fail("the checkpoint seed does not belong to index root 1",
                       "检查点种子与第 1 版索引根密钥不符")
        return cls(path, keks, active, roots.get(1), algorithm, _stamp_of(path),
                   index_roots=roots, _seed=seed)

    def _follow(self) -> None:
        """Pick up a rotation made by another process (``registry keys rotate`` or
        ``rotate-index`` while the server runs): a changed file is loaded again. Its checkpoint
        seed never changes, so a file that holds another one is another registry's."""
        stamp = _stamp_of(self.path)
        if stamp == self._stamp or stamp is None:
            return
        fresh = LocalKeyFile.load(self.path, self.algorithm)
        if fresh._seed != self._seed:
            raise SetupError(f"key file {self.path} was replaced by another registry's",
                             f"密钥文件 {self.path} 被替换为其他系统的密钥文件")
        self.keks, self.active_kek_id, self._stamp = fresh.keks, fresh.active_kek_id, stamp
        self.index_roots, self._index_root = fresh.index_roots, fresh._index_root
        self._aeads = {}

    def _aead(self, kek_id: str) -> AESGCM | None:
        """The cipher of a KEK version, set up once per version held (its key schedule costs
        more than wrapping a data key; a rotation unwraps every key under the old version).
        Dropped whenever the versions change."""
        aead = self._aeads.get(kek_id)
        if aead is None and kek_id in self.keks:
            aead = self._aeads[kek_id] = AESGCM(self.keks[kek_id])
        return aead

    def kek_ids(self) -> list[str]:
        self._follow()
        return sorted(self.keks)

    def new_kek(self) -> str:
        self._follow()
        kek_id = _new_kek_id()
        self._rewrite({**self.keks, kek_id: os.urandom(32)}, kek_id)
        return kek_id

    def retire_kek(self, kek_id: str) -> None:
        self._follow()
        if kek_id == self.active_kek_id:
            raise SetupError(f"{kek_id} is the active key-encryption key; it cannot be retired",
                             f"{kek_id} 是当前主密钥，不能退役")
        if kek_id in self.keks:
            self._rewrite({k: v for k, v in self.keks.items() if k != kek_id},
                          self.active_kek_id)

    def _rewrite(self, keks: dict[str, bytes], active: str,
                 roots: dict[int, bytes] | None = None) -> None:
        """Replace the key file atomically (a 0600 temporary file, fsynced, renamed over it,
        the directory fsynced): a crash leaves the old file or the new one, never half."""
        roots = self.index_roots if roots is None else roots
        body = _body(active, keks, roots, self._seed)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(body, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.keks, self.active_kek_id, self._stamp = keks, active, _stamp_of(self.path)
        self.index_roots, self._index_root = roots, roots.get(1)
        self._aeads = {}

    def wrap(self, dek: bytes, *, aad: bytes) -> tuple[str, bytes]:
        self._follow()
        kek_id = self.active_kek_id
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + self._aead(kek_id).encrypt(nonce, dek, aad + kek_id.encode())
        return kek_id, wrapped

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        aead = self._aead(kek_id)
        if aead is None:
            self._follow()
            aead = self._aead(kek_id)
        if aead is None:
            raise CryptoError(f"key-encryption key {kek_id} is not in the key file")
        try:
            return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                       aad + kek_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise CryptoError(f"data key does not open under {kek_id}") from exc

    def index_versions(self) -> list[int]:
        self._follow()
        return sorted(self.index_roots)

    def index_root(self, version: int | None = None) -> bytes:
        if version is None:
            return self.index_roots[max(self.index_roots)]
        if version not in self.index_roots:
            self._follow()
        try:
            return self.index_roots[version]
        except KeyError:
            raise CryptoError(f"index key version {version} is not in the key file") from None

    def new_index_root(self) -> int:
        self._follow()
        version = max(self.index_roots) + 1
        self._rewrite(self.keks, self.active_kek_id,
                      {**self.index_roots, version: os.urandom(32)})
        return version

    def retire_index_root(self, version: int) -> None:
        self._follow()
        if version == max(self.index_roots):
            raise SetupError(f"index key version {version} is the active one; it cannot be "
                             "retired", f"第 {version} 版索引密钥是当前版本，不能退役")
        if version in self.index_roots:
            self._rewrite(self.keks, self.active_kek_id,
                          {v: k for v, k in self.index_roots.items() if v != version})

    def checkpoint_key(self) -> Ed25519PrivateKey:
        """The audit checkpoints' signing key, derived from the key file's first index root
        (so it survives KEK and index rotation and needs no key of its own)."""
        return Ed25519PrivateKey.from_private_bytes(self._seed)


def checkpoint_key_from(index_root: bytes) -> Ed25519PrivateKey:
    """The audit checkpoints' signing key, derived from a provider's (first) index root."""
    return Ed25519PrivateKey.from_private_bytes(_checkpoint_seed(index_root))


def _checkpoint_seed(index_root: bytes) -> bytes:
    return hmac.digest(index_root, b"registry-audit-checkpoint/v1", "sha256")


def _stamp_of(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def _new_kek_id() -> str:
    """Sortable by creation: ``kek-<UTC time>-<random>``."""
    return f"kek-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def _body(active: str, keks: dict[str, bytes], roots: dict[int, bytes], seed: bytes) -> dict:
    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    body = {"format": KEYFILE_FORMAT, "active": active,
            "keks": {k: b64(v) for k, v in keks.items()}}
    if list(roots) == [1]:  # never rotated: format 1, as before index-root versions
        return {**body, "index_root": b64(roots[1])}
    return {**body, "format": KEYFILE_FORMAT_VERSIONED,
            "index_roots": {str(v): b64(k) for v, k in sorted(roots.items())},
            "checkpoint_seed": b64(seed)}


# --- blind indexes ------------------------------------------------------------------------


class BlindIndexer:
    def __init__(self, root: bytes, bits: int) -> None:
        self._root = root
        self.bits = bits
        self._keys: dict[tuple[str, str], bytes] = {}

    def _key(self, table: str, column: str) -> bytes:
        try:
            return self._keys[(table, column)]
        except KeyError:
            label = f"registry-blind-index/v1|{table}|{column}".encode()
            key = self._keys[(table, column)] = hmac.digest(self._root, label, "sha256")
            return key

    def __call__(self, table: str, column: str, normalised: str) -> int:
        digest = hmac.digest(self._key(table, column), normalised.encode(), "sha256")
        return int.from_bytes(digest[:8], "big") >> (64 - self.bits)

    def fingerprint(self) -> str:
        """A public check value: tells whether this root built the indexes in a database."""
        return hashlib.sha256(self._key("registry", "fingerprint")).hexdigest()[:32]


class BlindIndexes:
    """One :class:`BlindIndexer` per index-root version the provider holds, each set up when
    first needed. Which versions the data is indexed under is the database's to say
    (:mod:`registry.vault.indexadmin`); this only knows the keys."""

    def __init__(self, provider: KeyProvider, bits: int) -> None:
        self._provider = provider
        self.bits = bits
        self._indexers: dict[int, BlindIndexer] = {}

    def versions(self) -> list[int]:
        return self._provider.index_versions()

    def of(self, version: int) -> BlindIndexer:
        """The indexer of a version; one the provider lacks is a :class:`CryptoError`."""
        indexer = self._indexers.get(version)
        if indexer is None:
            indexer = self._indexers[version] = BlindIndexer(
                self._provider.index_root(version), self.bits)
        return indexer

    def forget(self, keep: set[int]) -> None:
        """Drop the indexers (and so the roots) of versions no longer in use."""
        for version in set(self._indexers) - keep:
            del self._indexers[version]

    def __call__(self, table: str, column: str, normalised: str) -> int:
        """Under the provider's active version (code without a database at hand: tests)."""
        return self.of(max(self.versions()))(table, column, normalised)

    def fingerprint(self) -> str:
        """The active version's fingerprint."""
        return self.of(max(self.versions())).fingerprint()

    def fingerprints(self) -> dict[int, str]:
        """Every version's fingerprint: one of them tells a backup is this registry's."""
        return {version: self.of(version).fingerprint() for version in self.versions()}
